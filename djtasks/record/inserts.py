"""New task rows into the table: one INSERT, or a bulk() block's rows written together (COPY or multi-row INSERTs).

The statements are the SQL the ORM would emit, with values converted as the model's fields
would convert them (rows.py), and the model signals sent as save() would send them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache, partial
from itertools import chain
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connections
from django.db.models import signals

from djtasks.record.models import TaskRecord
from djtasks.record.reading import FIELDS
from djtasks.record.rows import insert_params, new_params


@cache
def _insert_sql(vendor: str, quote: Any) -> str:
    table = quote(TaskRecord._meta.db_table)
    columns = ", ".join(quote(f.column) for f in FIELDS.values())
    return f"INSERT INTO {table} ({columns}) VALUES {_ROW}"


_ROW = f"({', '.join(['%s'] * len(FIELDS))})"


@lru_cache(maxsize=32)  # the powers of two up to a full statement (_sizes), on one or two databases
def _insert_many_sql(vendor: str, quote: Any, rows: int) -> str:
    return _insert_sql(vendor, quote) + f", {_ROW}" * (rows - 1)


def insert(record: TaskRecord, using: str, *, deferrable: bool = False) -> None:
    """INSERT a new row as save(force_insert=True) would, sending pre_save and post_save.

    deferrable: inside deferred_inserts() on this connection, the row joins the block's pending
    rows instead, written with them (write_pending) before the connection's next statement.
    """
    connection = connections[using]
    signals.pre_save.send(sender=TaskRecord, instance=record, raw=False, using=using, update_fields=None)
    params = insert_params(record, connection)
    pending = _PENDING.get(connection) if deferrable else None
    if pending is not None:
        pending.append(params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(connection.vendor, connection.ops.quote_name), params)
    record._state.adding = False
    record._state.db = using
    signals.post_save.send(sender=TaskRecord, instance=record, created=True, update_fields=None, raw=False, using=using)


def insert_values(values: dict[str, Any], using: str, *, deferrable: bool = False) -> None:
    """INSERT the row new_record(**values) would be, building no instance: only when rows.instance_free().

    Sends no model signal: instance_free() means djtasks' publish was the only receiver, and
    the caller schedules the publish itself. deferrable: as insert()'s. On PostgreSQL the JSON
    values are their text (a literal the column casts; psycopg quoted its Jsonb in Python).
    """
    connection = connections[using]
    insert_row(new_params(values, connection, text_json=connection.vendor == "postgresql"), connection, deferrable)


def insert_row(params: list[Any], connection: Any, deferrable: bool) -> None:
    """insert_values() of a row already converted by rows.new_params (text JSON on PostgreSQL)."""
    pending = _PENDING.get(connection) if deferrable else None
    if pending is not None:
        pending.append(params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(connection.vendor, connection.ops.quote_name), params)


# Per connection (one per thread and alias): the parameters of rows written when it next runs a statement.
_PENDING: WeakKeyDictionary[Any, list[list[Any]]] = WeakKeyDictionary()
# Rows per multi-row INSERT at most (a power of two). SQLite compiles a statement in time
# proportional to its size, about 8 µs a row, and its statement cache keeps it only for the
# same text: a block's rows go in statements of this many rows and of smaller powers of two,
# at most seven texts however many rows a block has, each compiled once per connection.
MAX_ROWS_PER_INSERT = 64


@contextmanager
def deferred_inserts(using: str) -> Iterator[None]:
    """Within the block, deferrable inserts on this connection are written together (write_pending).

    The pending rows are written before any other statement the connection runs (a read, a
    SAVEPOINT, a RELEASE or ROLLBACK TO, an UPDATE: the transaction always reads its own writes)
    and when the block ends without an exception; an exception discards them unwritten. The
    caller must hold a transaction open for the whole block (calling/bulk.py does), so a commit
    cannot come between an insert and its statement.
    """
    connection = connections[using]
    if connection in _PENDING:  # nested: the outer block writes them
        yield
        return
    _PENDING[connection] = []
    try:
        with connection.execute_wrapper(partial(_write_first, connection)):
            yield
            write_pending(connection)
    finally:
        del _PENDING[connection]


def _write_first(connection: Any, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if _PENDING.get(connection):
        write_pending(connection)
    return execute(sql, params, many, context)


@cache
def _copy_sql(quote: Any) -> str:
    columns = ", ".join(quote(f.column) for f in FIELDS.values())
    return f"COPY {quote(TaskRecord._meta.db_table)} ({columns}) FROM STDIN"


def write_pending(connection: Any) -> None:
    """Write the connection's pending rows now: PostgreSQL's COPY, else multi-row INSERTs (_sizes).

    COPY does not pass through Django's execute wrappers or its query log (connection.queries).
    SQLite's INSERTs go to the sqlite3 cursor directly when neither would see them (_unseen).
    """
    pending = _PENDING.get(connection)
    if not pending:
        return
    rows, pending[:] = pending[:], []
    if connection.vendor == "postgresql":  # COPY: psycopg dumps the values in C, not as SQL literals in Python
        # wrap_database_errors: a refused row raises Django's IntegrityError, as an INSERT would.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(_copy_sql(connection.ops.quote_name)) as copy:
                for row in rows:
                    copy.write_row(row)
        return
    limit = connection.ops.bulk_batch_size(list(FIELDS.values()), rows)
    with connection.cursor() as cursor:
        unseen = _unseen(connection, cursor.cursor)
        start = 0
        for size in _sizes(len(rows), limit):
            sql = _insert_many_sql(connection.vendor, connection.ops.quote_name, size)
            params = list(chain.from_iterable(rows[start : start + size]))
            start += size
            if unseen:  # what cursor.execute would run, without its regex over 35 placeholders a row
                connection.validate_no_broken_transaction()
                with connection.wrap_database_errors:
                    sqlite3.Cursor.execute(cursor.cursor, _qmark(sql, cursor.cursor), params)
            else:
                cursor.execute(sql, params)


def _sizes(count: int, limit: int) -> Iterator[int]:
    """The rows of each INSERT for `count` rows: powers of two up to MAX_ROWS_PER_INSERT and `limit`, largest first."""
    size = 1 << (max(1, min(MAX_ROWS_PER_INSERT, limit)).bit_length() - 1)
    while count:
        while size > count:
            size >>= 1
        yield size
        count -= size


def _unseen(connection: Any, raw: Any) -> bool:
    """Whether an INSERT on this SQLite cursor would be seen by no query log and no execute wrapper but ours."""
    if connection.vendor != "sqlite" or not isinstance(raw, sqlite3.Cursor) or connection.queries_logged:
        return False
    wrappers = [getattr(w, "func", None) for w in connection.execute_wrappers]
    return callable(getattr(type(raw), "convert_query", None)) and all(f is _write_first for f in wrappers)


_QMARK: dict[str, str] = {}  # as _insert_many_sql's cache: the statements of _sizes


def _qmark(sql: str, raw: Any) -> str:
    """The statement Django's SQLite cursor runs for this one (its convert_query: %s to ?), converted once."""
    if sql not in _QMARK:
        if len(_QMARK) >= 32:
            _QMARK.clear()
        _QMARK[sql] = raw.convert_query(sql)
    return _QMARK[sql]
