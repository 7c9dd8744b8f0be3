"""What waiting for a task reads: its state and result, without building the whole row.

AsyncResult.get() reads a task's row at least twice per wait (before and after the
notification); read_rows() builds the full TaskRecord (35 columns, each converted) for it, 82 µs
a read against 15 for these two columns (SQLite, measured in-process); on SQLite the SELECT goes to
the sqlite3 cursor itself when nothing watches (rawsqlite). The values are converted
as the ORM converts them when it reads the row: converters() and convert(), which sql.read_rows()
uses for whole rows.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connections

from djtasks.record import rawsqlite
from djtasks.record.models import TaskRecord

_COLUMNS = ("state", "result")
FIELDS = {f.name: f for f in TaskRecord._meta.concrete_fields}


@cache
def _state_sql(vendor: str, quote: Any) -> str:
    table = quote(TaskRecord._meta.db_table)
    columns = ", ".join(quote(FIELDS[name].column) for name in _COLUMNS)
    return f"SELECT {columns} FROM {table} WHERE {quote(FIELDS['id'].column)} = %s"


_CONVERTERS: dict[tuple[str, tuple[str, ...]], list[tuple[Any, list[Any]]]] = {}


def converters(connection: Any, names: tuple[str, ...] = ()) -> list[tuple[Any, list[Any]]]:
    """The converters the ORM applies to each column it reads (they depend on the backend); all fields, or `names`."""
    key = (connection.vendor, names)
    found = _CONVERTERS.get(key)
    if found is None:
        fields = [FIELDS[name] for name in names] if names else list(FIELDS.values())
        found = []
        for field in fields:
            column = field.get_col(TaskRecord._meta.db_table)
            found.append((column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
        _CONVERTERS[key] = found
    return found


def convert(connection: Any, raw: tuple[Any, ...], found: list[tuple[Any, list[Any]]]) -> list[Any]:
    """A row's values as the ORM reads them, converted by `found` (converters())."""
    values = list(raw)
    for index, (column, functions) in enumerate(found):
        for function in functions:
            values[index] = function(values[index], column, connection)
    return values


def read_state(using: str, task_id: str) -> tuple[str, Any] | None:
    """The row's (state, result) as the ORM would give them; None if there is no such row."""
    connection = connections[using]
    sql = _state_sql(connection.vendor, connection.ops.quote_name)
    with connection.cursor() as cursor:  # on SQLite, the sqlite3 cursor itself when nothing watches
        raw = rawsqlite.execute(connection, cursor, sql, [task_id]).fetchone()
    if raw is None:
        return None
    state, result = convert(connection, raw, converters(connection, _COLUMNS))
    return state, result
