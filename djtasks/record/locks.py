"""The unique key of a row: insert it unless another row holds the key, find the holder, hand the key over.

A row holds its key in unique_lock, which a partial unique index makes one per key. The INSERT
says ON CONFLICT (unique_lock) DO NOTHING, so a second transaction inserting the same key waits
for the first (PostgreSQL: until it commits or rolls back; SQLite: its write lock), then inserts
nothing if the first committed, or inserts if it rolled back. The caller runs these inside one
transaction (a savepoint of its own, if it is in one already).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connections
from django.db.models import signals

from djtasks.core.states import PENDING
from djtasks.record import rows, sql
from djtasks.record.models import TaskRecord

_COLUMNS = [field.column for field in TaskRecord._meta.concrete_fields]


@cache
def _insert_sql(vendor: str, quote: Any) -> str:
    table = quote(TaskRecord._meta.db_table)
    columns = ", ".join(quote(column) for column in _COLUMNS)
    lock = quote(TaskRecord._meta.get_field("unique_lock").column)  # type: ignore[union-attr]
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
        f"ON CONFLICT ({lock}) WHERE {lock} IS NOT NULL DO NOTHING"
    )


@cache
def _holder_sql(vendor: str, quote: Any) -> str:
    meta = TaskRecord._meta
    lock = quote(meta.get_field("unique_lock").column)  # type: ignore[union-attr]
    return f"SELECT {quote(meta.pk.column)} FROM {quote(meta.db_table)} WHERE {lock} = %s"  # type: ignore[union-attr]


def insert_unless_held(record: TaskRecord, using: str) -> bool:
    """INSERT the row unless another row holds its unique_lock; say whether it was inserted.

    An inserted row sends post_save (created), which schedules its publish, as inserts.insert does.
    Any other conflict (a task id already taken) raises as it would there.
    """
    connection = connections[using]
    signals.pre_save.send(sender=TaskRecord, instance=record, raw=False, using=using, update_fields=None)
    with connection.cursor() as cursor:
        params = rows.insert_params(record, connection)
        cursor.execute(_insert_sql(connection.vendor, connection.ops.quote_name), params)
        inserted = cursor.rowcount == 1
    if inserted:
        record._state.adding = False
        record._state.db = using
        signals.post_save.send(
            sender=TaskRecord, instance=record, created=True, update_fields=None, raw=False, using=using
        )
    return inserted


def holder(using: str, lock: str) -> TaskRecord | None:
    """The row holding a key, as committed (or as this transaction wrote it); one lookup of the partial index.

    Not locked: whether it still holds the key rightly is read from committed data, and every
    change made on that basis (give_up, replace_waiting) is an UPDATE that checks it again.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(_holder_sql(connection.vendor, connection.ops.quote_name), [lock])
        found = cursor.fetchone()
    return sql.read_rows(using, [found[0]]).get(found[0]) if found else None


def give_up(using: str, task_id: str, lock: str) -> bool:
    """Take the key from a row that no longer holds it rightly (finished, its window passed, or started)."""
    return bool(TaskRecord.objects.using(using).filter(pk=task_id, unique_lock=lock).update(unique_lock=None))


def replace_waiting(using: str, record: TaskRecord, latest: TaskRecord) -> bool:
    """Give a debounced row that no worker has started the latest call's arguments, start time and expiry.

    Conditioned on the row still waiting (PENDING, never started): a worker that started it first
    wins, and the caller then enqueues the latest call as a new row.
    """
    keys = dict(record.keys) if isinstance(record.keys, dict) else {}
    duplicates = keys.get("duplicates")
    keys.update(latest.keys or {})
    keys["duplicates"] = (duplicates if type(duplicates) is int else 0) + 1
    keys["last_duplicate_at"] = latest.enqueued_at.isoformat()
    values = {"args": latest.args, "kwargs": latest.kwargs, "eta": latest.eta, "expires_at": latest.expires_at}
    changed = (
        TaskRecord.objects.using(using)
        .filter(pk=record.pk, unique_lock=latest.unique_lock, state=PENDING, started_at__isnull=True)
        .update(keys=keys, **values)
    )
    if changed:
        for name, value in values.items():
            setattr(record, name, value)
        record.keys = keys
    return bool(changed)
