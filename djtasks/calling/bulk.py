"""bulk(): many calls in one transaction, their rows written by multi-row INSERTs, published in one round trip."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import router, transaction

from djtasks.record import inserts
from djtasks.record.models import TaskRecord


@contextmanager
def bulk(using: str | None = None) -> Iterator[None]:
    """Enqueue every call made in the block in one transaction, as ``transaction.atomic()`` would. For example::

        with djtasks.bulk():
            for user in users:
                send_digest.delay(user.pk)

    The rows of plain calls wait and are written together (COPY, or multi-row INSERTs) before
    the transaction's next statement, whatever runs it (a read of a result in the block sees
    its row), and when the block ends; the commit follows, then one publish round trip for all.
    An exception in the block rolls it all back and publishes nothing, as atomic() does. Calls
    of unique, debounced or keyed tasks are written at once, as outside the block. An error
    of a row itself (a task_id used twice) is raised by the statement that writes it, which
    may come after the call that made it.
    """
    db = using or router.db_for_write(TaskRecord)
    with transaction.atomic(using=db), inserts.deferred_inserts(db):
        yield
