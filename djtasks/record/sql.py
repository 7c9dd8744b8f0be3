"""Hot-path statements on the task table, built once per database from the model's metadata.

The ORM compiles every UPDATE anew (about half a millisecond each); a worker writes two per
task. These statements are the same SQL the ORM would emit, with values still converted by the
model's own fields (get_db_prep_save), and the model signals sent as save() would send them.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache, partial
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connections, models
from django.db.models import signals

from djtasks.record import reading
from djtasks.record.models import TaskRecord
from djtasks.record.reading import FIELDS
from djtasks.record.rows import insert_params, new_params


@cache
def _update_sql(vendor: str, quote: Any, assigned: tuple[str, ...], matched: tuple[tuple[str, int], ...]) -> str:
    table = quote(TaskRecord._meta.db_table)
    sets = ", ".join(f"{quote(FIELDS[name].column)} = %s" for name in assigned)
    where = " AND ".join(
        f"{quote(FIELDS[name].column)} = %s"
        if count < 0
        else f"{quote(FIELDS[name].column)} IN ({', '.join(['%s'] * count)})"
        for name, count in matched
    )
    return f"UPDATE {table} SET {sets} WHERE {where}"


@cache
def _insert_sql(vendor: str, quote: Any) -> str:
    table = quote(TaskRecord._meta.db_table)
    columns = ", ".join(quote(f.column) for f in FIELDS.values())
    return f"INSERT INTO {table} ({columns}) VALUES {_ROW}"


_ROW = f"({', '.join(['%s'] * len(FIELDS))})"


@lru_cache(maxsize=4)  # a full batch and the last one's length, on one or two databases
def _insert_many_sql(vendor: str, quote: Any, rows: int) -> str:
    return _insert_sql(vendor, quote) + f", {_ROW}" * (rows - 1)


# Values the fields would pass through unchanged: plain strings for text columns, plain ints
# and bools for number columns, None for nullable ones. Anything else takes the field's own path.
_TEXT = (models.CharField, models.TextField)
_NUMBER = (models.IntegerField, models.BooleanField)
_PASS_THROUGH = [
    (str,) if isinstance(f, _TEXT) else (int, bool) if isinstance(f, _NUMBER) else () for f in FIELDS.values()
]
_PASSING = dict(zip(FIELDS, _PASS_THROUGH, strict=True))
_EMPTY_JSON: dict[tuple[str, str, type], Any] = {}
# JSON columns without a custom encoder: get_db_prep_save hands a plain value to adapt_json_value.
_JSON = frozenset(name for name, f in FIELDS.items() if isinstance(f, models.JSONField) and f.encoder is None)
_JSON_PLAIN = frozenset({list, dict, str, int, float, bool})
_DATETIME = frozenset(name for name, f in FIELDS.items() if type(f) is models.DateTimeField)


def _prep(field: Any, passing: tuple[type, ...], value: Any, connection: Any) -> Any:
    """What field.get_db_prep_save(value) gives, without its cost for plain values."""
    kind = type(value)
    if value is None and field.null or kind in passing:
        return value
    if kind is datetime.datetime and value.tzinfo is datetime.UTC and field.name in _DATETIME:
        # The worker's times (timezone.now()): PostgreSQL's adapter takes them as they are; SQLite
        # stores naive text in the connection's zone, so a UTC connection needs no conversion.
        if connection.vendor == "postgresql":
            return value
        if connection.vendor == "sqlite" and connection.timezone is datetime.UTC:
            return str(value.replace(tzinfo=None))
    if not value and kind in (list, dict):
        # An empty list or dict (most JSON columns): converted once per database kind.
        key = (connection.vendor, field.attname, kind)
        if key not in _EMPTY_JSON:
            _EMPTY_JSON[key] = field.get_db_prep_save(kind(), connection)
        return _EMPTY_JSON[key]
    if kind in _JSON_PLAIN and field.name in _JSON:
        return connection.ops.adapt_json_value(value, None)
    return field.get_db_prep_save(value, connection)


def update_statement(connection: Any, assigned: tuple[str, ...], matched: tuple[str, ...], row: tuple[Any, ...]) -> str:
    """The UPDATE for these fields; a tuple in a matched value of `row` means IN (that many values)."""
    shape = tuple(
        (name, len(value) if isinstance(value, tuple) else -1)
        for name, value in zip(matched, row[len(assigned) :], strict=True)
    )
    return _update_sql(connection.vendor, connection.ops.quote_name, assigned, shape)


def row_params(names: tuple[str, ...], row: tuple[Any, ...], connection: Any) -> list[Any]:
    """The parameters of one row's values (assigned then matched), a tuple value spread out for IN."""
    params: list[Any] = []
    for name, value in zip(names, row, strict=True):
        field, passing = FIELDS[name], _PASSING[name]
        if isinstance(value, tuple):
            params += [_prep(field, passing, item, connection) for item in value]
        else:
            params.append(_prep(field, passing, value, connection))
    return params


def update(using: str, values: dict[str, Any], **match: Any) -> int:
    """UPDATE the task table SET values WHERE each match field equals its value (or is IN a tuple)."""
    connection = connections[using]
    assigned, matched, row = tuple(values), tuple(match), (*values.values(), *match.values())
    sql = update_statement(connection, assigned, matched, row)
    with connection.cursor() as cursor:
        cursor.execute(sql, row_params((*assigned, *matched), row, connection))
        return cursor.rowcount


@cache
def _select_sql(vendor: str, quote: Any, count: int, for_update: bool) -> str:
    table = quote(TaskRecord._meta.db_table)
    columns = ", ".join(quote(f.column) for f in FIELDS.values())
    lock = " FOR UPDATE" if for_update else ""
    return f"SELECT {columns} FROM {table} WHERE {quote(FIELDS['id'].column)} IN ({', '.join(['%s'] * count)}){lock}"


def read_rows(using: str, ids: list[str], *, lock: bool = False) -> dict[str, TaskRecord]:
    """Read the rows with these ids as the ORM would build them (locked for update if asked and supported)."""
    if not ids:
        return {}
    connection = connections[using]
    for_update = lock and connection.features.has_select_for_update
    sql = _select_sql(connection.vendor, connection.ops.quote_name, len(ids), for_update)
    found = reading.converters(connection)
    names = list(FIELDS)
    records = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        for raw in cursor.fetchall():
            record = TaskRecord.from_db(using, names, reading.convert(connection, raw, found))
            records[record.pk] = record
    return records


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
    connection, pending = connections[using], _PENDING.get(connections[using]) if deferrable else None
    params = new_params(values, connection, text_json=connection.vendor == "postgresql")
    if pending is not None:
        pending.append(params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(connection.vendor, connection.ops.quote_name), params)


# Per connection (one per thread and alias): the parameters of rows written when it next runs a statement.
_PENDING: WeakKeyDictionary[Any, list[list[Any]]] = WeakKeyDictionary()
MAX_ROWS_PER_INSERT = 1000


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
    """Write the connection's pending rows now: PostgreSQL's COPY, else one INSERT per MAX_ROWS_PER_INSERT rows.

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
    per_insert = max(1, min(MAX_ROWS_PER_INSERT, connection.ops.bulk_batch_size(list(FIELDS.values()), rows)))
    with connection.cursor() as cursor:
        unseen = _unseen(connection, cursor.cursor)
        for start in range(0, len(rows), per_insert):
            chunk = rows[start : start + per_insert]
            sql = _insert_many_sql(connection.vendor, connection.ops.quote_name, len(chunk))
            params = [value for row in chunk for value in row]
            if unseen:  # what cursor.execute would run, without its regex over 35 placeholders a row
                connection.validate_no_broken_transaction()
                with connection.wrap_database_errors:
                    sqlite3.Cursor.execute(cursor.cursor, _qmark(sql, cursor.cursor), params)
            else:
                cursor.execute(sql, params)


def _unseen(connection: Any, raw: Any) -> bool:
    """Whether an INSERT on this SQLite cursor would be seen by no query log and no execute wrapper but ours."""
    if connection.vendor != "sqlite" or not isinstance(raw, sqlite3.Cursor) or connection.queries_logged:
        return False
    wrappers = [getattr(w, "func", None) for w in connection.execute_wrappers]
    return callable(getattr(type(raw), "convert_query", None)) and all(f is _write_first for f in wrappers)


_QMARK: dict[str, str] = {}  # as _insert_many_sql's cache: a full batch and the last one's length


def _qmark(sql: str, raw: Any) -> str:
    """The statement Django's SQLite cursor runs for this one (its convert_query: %s to ?), converted once."""
    if sql not in _QMARK:
        if len(_QMARK) >= 4:
            _QMARK.clear()
        _QMARK[sql] = raw.convert_query(sql)
    return _QMARK[sql]
