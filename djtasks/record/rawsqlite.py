"""SQLite statements run on the sqlite3 cursor itself when nothing would see them pass through Django's cursor.

Django's SQLite cursor turns each statement's %s into ? with a regex over its whole text (the
task table's statements name 35 columns) and wraps the call; a worker runs three such
statements per task it starts alone, a caller one per call. Where no query log and no execute
wrapper (but those `allowed`) would see the statement, it goes to the sqlite3 cursor with the
text Django's cursor would have run, converted once, and raises Django's errors as Django's
cursor would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any


def unseen(connection: Any, raw: Any, allowed: tuple[Callable[..., Any], ...] = ()) -> bool:
    """Whether a statement on this cursor would be seen by no query log and no execute wrapper but `allowed`."""
    if connection.vendor != "sqlite" or not isinstance(raw, sqlite3.Cursor) or connection.queries_logged:
        return False
    wrappers = [getattr(w, "func", w) for w in connection.execute_wrappers]
    return callable(getattr(type(raw), "convert_query", None)) and all(f in allowed for f in wrappers)


def execute(connection: Any, cursor: Any, sql: str, params: Sequence[Any], allowed: tuple[Any, ...] = ()) -> Any:
    """cursor.execute(sql, params), on the sqlite3 cursor itself if unseen(): returns the cursor that ran it."""
    raw = cursor.cursor
    if not unseen(connection, raw, allowed):
        cursor.execute(sql, params)
        return cursor
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        return sqlite3.Cursor.execute(raw, qmark(sql, raw), params)


_QMARK: dict[str, str] = {}  # by statement: the hot paths' texts (record/sql.py's and inserts.py's caches)


def qmark(sql: str, raw: Any) -> str:
    """The statement Django's SQLite cursor runs for this one (its convert_query: %s to ?), converted once."""
    converted = _QMARK.get(sql)
    if converted is None:
        if len(_QMARK) >= 256:
            _QMARK.clear()
        converted = _QMARK[sql] = raw.convert_query(sql)
    return converted
