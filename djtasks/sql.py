"""Hot-path statements on the task table, built once per database from the model's metadata.

The ORM compiles every UPDATE anew (about half a millisecond each); a worker writes two per
task. These statements are the same SQL the ORM would emit, with values still converted by the
model's own fields (get_db_prep_save), and the model signals sent as save() would send them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connections
from django.db.models import signals

from .models import TaskRecord

_FIELDS = {f.name: f for f in TaskRecord._meta.concrete_fields}


@cache
def _update_sql(vendor: str, quote: Any, assigned: tuple[str, ...], matched: tuple[tuple[str, int], ...]) -> str:
    table = quote(TaskRecord._meta.db_table)
    sets = ", ".join(f"{quote(_FIELDS[name].column)} = %s" for name in assigned)
    where = " AND ".join(
        f"{quote(_FIELDS[name].column)} = %s" if count < 0
        else f"{quote(_FIELDS[name].column)} IN ({', '.join(['%s'] * count)})"
        for name, count in matched
    )
    return f"UPDATE {table} SET {sets} WHERE {where}"


@cache
def _insert_sql(vendor: str, quote: Any) -> str:
    table = quote(TaskRecord._meta.db_table)
    columns = ", ".join(quote(f.column) for f in _FIELDS.values())
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(_FIELDS))})"


def update(using: str, values: dict[str, Any], **match: Any) -> int:
    """UPDATE the task table SET values WHERE each match field equals its value (or is IN a tuple)."""
    connection = connections[using]
    shape = tuple((name, len(value) if isinstance(value, tuple) else -1) for name, value in match.items())
    sql = _update_sql(connection.vendor, connection.ops.quote_name, tuple(values), shape)
    params = [_FIELDS[name].get_db_prep_save(value, connection) for name, value in values.items()]
    for name, value in match.items():
        field = _FIELDS[name]
        if isinstance(value, tuple):
            params += [field.get_db_prep_save(item, connection) for item in value]
        else:
            params.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def insert(record: TaskRecord, using: str) -> None:
    """INSERT a new row as save(force_insert=True) would, sending pre_save and post_save."""
    connection = connections[using]
    signals.pre_save.send(sender=TaskRecord, instance=record, raw=False, using=using, update_fields=None)
    params = [f.get_db_prep_save(f.pre_save(record, True), connection) for f in _FIELDS.values()]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor, connection.ops.quote_name), params)
    record._state.adding = False
    record._state.db = using
    signals.post_save.send(sender=TaskRecord, instance=record, created=True, update_fields=None, raw=False, using=using)
