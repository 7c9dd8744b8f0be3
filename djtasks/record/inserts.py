"""New task rows into the table: one INSERT, or a bulk() block's rows written together (COPY or multi-row INSERTs).

The statements are the SQL the ORM would emit, with values converted as the model's fields
would convert them (rows.py), and the model signals sent as save() would send them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache, partial
from itertools import chain
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connections
from django.db.models import signals

from djtasks.record import rawsqlite
from djtasks.record.models import TaskRecord
from djtasks.record.reading import FIELDS
from djtasks.record.rows import insert_params, new_params


@cache
def _columns(quote: Any) -> str:
    """The task table's columns, quoted, in FIELDS' order: the order of a whole row's parameters."""
    return ", ".join(quote(f.column) for f in FIELDS.values())


@cache
def _insert_sql(vendor: str, quote: Any) -> str:
    return f"INSERT INTO {quote(TaskRecord._meta.db_table)} ({_columns(quote)}) VALUES {_ROW}"


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
    insert_row(insert_params(record, connection), connection, deferrable)
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


def insert_row(params: list[Any], connection: Any, deferrable: bool, shape: Shape | None = None) -> None:
    """insert_values() of a row already converted by rows.new_params (text JSON on PostgreSQL).

    shape: params are only the values of shape.columns, the row's other columns shape.row's.
    """
    pending = _PENDING.get(connection) if deferrable else None
    if pending is None:
        with connection.cursor() as cursor:
            if shape is not None and connection.vendor == "postgresql":
                cursor.execute(shape.statement(connection), params)
                return
            row = params if shape is None else shape.full(params)
            rawsqlite.execute(connection, cursor, _insert_sql(connection.vendor, connection.ops.quote_name), row)
    elif pending and pending[-1][0] is shape:
        pending[-1][1].append(params)
    else:
        pending.append((shape, [params]))


class Shape:
    """New rows alike but in a few columns (one task's calls without options): a full row and the columns that vary.

    SQLite binds each parameter of a multi-row INSERT: 35 a row cost about 3 µs more than 5. Such
    rows are written by INSERT ... SELECT from a VALUES list of only the columns that vary, the
    others bound once per statement.
    """

    __slots__ = ("columns", "constants", "row", "sql")

    def __init__(self, row: list[Any], columns: tuple[int, ...]):
        self.row = row  # the parameters of a whole row (rows.new_params)
        self.columns = columns  # the indexes, in row, of the values each row of this shape gives
        self.constants = [value for index, value in enumerate(row) if index not in columns]
        self.sql: str | None = None  # statement()'s, made at its first call

    def full(self, values: list[Any]) -> list[Any]:
        row = self.row.copy()
        for index, value in zip(self.columns, values, strict=True):
            row[index] = value
        return row

    def statement(self, connection: Any) -> str:
        """PostgreSQL's INSERT of one row of this shape: placeholders for its columns, the others' literals inlined.

        Django's psycopg cursor binds client-side: it renders every parameter as a literal in the
        statement's text, 35 a row, in Python for each call. The constants are rendered once
        here, by the same adapters (the connection's ClientCursor.mogrify), so the server gets the
        literals it got before (with OPTIONS' server_side_binding, the call's own five stay bound
        parameters); a % in a literal is doubled, as the placeholders' syntax needs. The shape
        belongs to one connection (calling/direct.py's plan), so its literals are that connection's.
        """
        if self.sql is None:
            others = [index for index in range(len(self.row)) if index not in self.columns]
            with connection.wrap_database_errors:  # a value the adapters refuse: Django's error, as execute's
                literals = [connection.ops.compose_sql("%s", [self.row[index]]) for index in others]
            fields, quote = list(FIELDS.values()), connection.ops.quote_name
            names = ", ".join(quote(fields[index].column) for index in (*self.columns, *others))
            values = ", ".join([*["%s"] * len(self.columns), *(text.replace("%", "%%") for text in literals)])
            self.sql = f"INSERT INTO {quote(TaskRecord._meta.db_table)} ({names}) VALUES ({values})"
        return self.sql


# Per connection (one per thread and alias): the rows written when it next runs a statement, in
# runs of one shape (None: whole rows), in the order they were made.
_PENDING: WeakKeyDictionary[Any, list[tuple[Shape | None, list[list[Any]]]]] = WeakKeyDictionary()
# Rows per multi-row INSERT at most (a power of two). SQLite compiles a statement in time
# proportional to its size, about 8 µs a row, and its statement cache keeps it only for the
# same text: a block's rows go in statements of this many rows and of smaller powers of two,
# at most seven texts however many rows a block has, each compiled once per connection.
MAX_ROWS_PER_INSERT = 64
# The innermost deferred_inserts() block of this context: (alias, connection, thread). Django's
# connections[alias] costs 0.8 µs (asgiref's Local); a context copied to another thread is not the block's.
_BLOCK: ContextVar[tuple[str, Any, int] | None] = ContextVar("djtasks_deferred_inserts", default=None)


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
    token = _BLOCK.set((using, connection, threading.get_ident()))
    try:
        with connection.execute_wrapper(partial(_write_first, connection)):
            yield
            write_pending(connection)
    finally:
        _BLOCK.reset(token)
        del _PENDING[connection]


def block_connection(using: str) -> Any:
    """connections[using] if this thread is in a deferred_inserts() block of that alias (a faster lookup), else None."""
    block = _BLOCK.get()
    if block is not None and block[0] == using and block[2] == threading.get_ident():
        return block[1]
    return None


def _write_first(connection: Any, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if _PENDING.get(connection):
        write_pending(connection)
    return execute(sql, params, many, context)


@cache
def _copy_sql(quote: Any) -> str:
    return f"COPY {quote(TaskRecord._meta.db_table)} ({_columns(quote)}) FROM STDIN"


def write_pending(connection: Any) -> None:
    """Write the connection's pending rows now: PostgreSQL's COPY, else multi-row INSERTs (_sizes).

    COPY does not pass through Django's execute wrappers or its query log (connection.queries).
    SQLite's INSERTs go to the sqlite3 cursor directly when neither would see them (rawsqlite.py).
    """
    pending = _PENDING.get(connection)
    if not pending:
        return
    runs, pending[:] = pending[:], []
    if connection.vendor == "postgresql":  # COPY: psycopg dumps the values in C, not as SQL literals in Python
        # wrap_database_errors: a refused row raises Django's IntegrityError, as an INSERT would.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(_copy_sql(connection.ops.quote_name)) as copy:
                for shape, rows in runs:
                    for row in rows:
                        copy.write_row(row if shape is None else shape.full(row))
        return
    with connection.cursor() as cursor:
        for shape, rows in runs:
            _write_run(connection, cursor, shape, rows)


def _write_run(connection: Any, cursor: Any, shape: Shape | None, rows: list[list[Any]]) -> None:
    """INSERT rows of one shape (None: whole rows) in statements of _sizes."""
    if shape is not None and connection.vendor != "sqlite":  # VALUES' columns are named column1... on SQLite
        rows, shape = [shape.full(row) for row in rows], None
    if shape is None:
        limit, constants = connection.ops.bulk_batch_size(list(FIELDS.values()), rows), []
    else:
        params_limit = connection.features.max_query_params or 1 << 30
        limit, constants = (params_limit - len(shape.constants)) // len(shape.columns), shape.constants
    start = 0
    for size in _sizes(len(rows), limit):
        if shape is None:
            sql = _insert_many_sql(connection.vendor, connection.ops.quote_name, size)
        else:
            sql = _insert_select_sql(connection.vendor, connection.ops.quote_name, shape.columns, size)
        params = [*constants, *chain.from_iterable(rows[start : start + size])]
        start += size
        # Without Django's regex over 35 placeholders a row, unless the query log or a wrapper but the block's watches.
        rawsqlite.execute(connection, cursor, sql, params, allowed=(_write_first,))


@lru_cache(maxsize=32)  # as _insert_many_sql's, for the one shape of calls without options
def _insert_select_sql(vendor: str, quote: Any, columns: tuple[int, ...], rows: int) -> str:
    fields = list(FIELDS.values())
    order = [*columns, *(index for index in range(len(fields)) if index not in columns)]
    names = ", ".join(quote(fields[index].column) for index in order)
    picked = ", ".join([f"column{n}" for n in range(1, len(columns) + 1)] + ["%s"] * (len(fields) - len(columns)))
    row = f"({', '.join(['%s'] * len(columns))})"
    values = ", ".join([row] * rows)
    return f"INSERT INTO {quote(TaskRecord._meta.db_table)} ({names}) SELECT {picked} FROM (VALUES {values})"


def _sizes(count: int, limit: int) -> Iterator[int]:
    """The rows of each INSERT for `count` rows: powers of two up to MAX_ROWS_PER_INSERT and `limit`, largest first."""
    size = 1 << (max(1, min(MAX_ROWS_PER_INSERT, limit)).bit_length() - 1)
    while count:
        while size > count:
            size >>= 1
        yield size
        count -= size
