"""Hot-path statements on the task table, built once per database from the model's metadata.

The ORM compiles every UPDATE anew (about half a millisecond each); a worker writes two per
task. These statements are the same SQL the ORM would emit, with values still converted by the
model's own fields (get_db_prep_save), and the model signals sent as save() would send them.
"""

from __future__ import annotations

import datetime
from functools import cache
from typing import Any

from django.db import connections, models

from djtasks.record import rawsqlite, reading
from djtasks.record.models import TaskRecord
from djtasks.record.reading import FIELDS


@cache
def _update_sql(
    vendor: str, quote: Any, assigned: tuple[str, ...], matched: tuple[tuple[str, int], ...], null: tuple[str, ...]
) -> str:
    table = quote(TaskRecord._meta.db_table)
    sets = ", ".join(f"{quote(FIELDS[name].column)} = %s" for name in assigned)
    where = " AND ".join(
        [
            f"{quote(FIELDS[name].column)} = %s"
            if count < 0
            else f"{quote(FIELDS[name].column)} IN ({', '.join(['%s'] * count)})"
            for name, count in matched
        ]
        + [f"{quote(FIELDS[name].column)} IS NULL" for name in null]
    )
    return f"UPDATE {table} SET {sets} WHERE {where}"


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


def update_statement(
    connection: Any,
    assigned: tuple[str, ...],
    matched: tuple[str, ...],
    row: tuple[Any, ...],
    null: tuple[str, ...] = (),
) -> str:
    """The UPDATE for these fields; a tuple in a matched value of `row` means IN (that many values);
    the fields in `null` must be NULL (they take no value in `row`)."""
    shape = tuple(
        (name, len(value) if isinstance(value, tuple) else -1)
        for name, value in zip(matched, row[len(assigned) :], strict=True)
    )
    return _update_sql(connection.vendor, connection.ops.quote_name, assigned, shape, null)


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


def column_params(name: str, values: tuple[Any, ...], connection: Any) -> list[Any]:
    """The parameters of one column's values (an array's elements), each converted as row_params() converts it."""
    field, passing = FIELDS[name], _PASSING[name]
    return [_prep(field, passing, value, connection) for value in values]


def update(using: str, values: dict[str, Any], **match: Any) -> int:
    """UPDATE the task table SET values WHERE each match field equals its value (is IN a tuple, IS NULL for None)."""
    connection = connections[using]
    null = tuple(name for name, value in match.items() if value is None)  # "= NULL" would match no row
    if null:
        match = {name: value for name, value in match.items() if value is not None}
    assigned, matched, row = tuple(values), tuple(match), (*values.values(), *match.values())
    sql = update_statement(connection, assigned, matched, row, null)
    with connection.cursor() as cursor:
        ran = rawsqlite.execute(connection, cursor, sql, row_params((*assigned, *matched), row, connection))
        return int(ran.rowcount)


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
        for raw in rawsqlite.execute(connection, cursor, sql, ids).fetchall():
            record = TaskRecord.from_db(using, names, reading.convert(connection, raw, found))
            records[record.pk] = record
    return records
