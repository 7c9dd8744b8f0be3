"""Duties every worker parent runs, acting once per tick cluster-wide where it matters.

- reap: return reservations whose lease expired (dead or hung workers) to their queues;
- sweep: publish rows that Redis does not know (publish never happened, or Redis lost its data);
- expire: delete finished rows older than RESULT_EXPIRES, in small batches.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import router
from django.db.models import Q
from django.utils import timezone

from djtasks.calling.publisher import due_ms, publish
from djtasks.core.conf import Settings
from djtasks.core.message import Message
from djtasks.record.models import Chord, GroupRecord, TaskRecord
from djtasks.transport.broker import Broker

logger = logging.getLogger("djtasks")
SWEEP_BATCH = 1000
# A sweep reads every unclaimed row of the last ten minutes: behind a backlog of thousands it takes
# a while (0.3 s for 5,000 rows, 6% of a drain's CPU at SWEEP_INTERVAL=2). The next one then waits
# one more SWEEP_INTERVAL per SWEEP_BATCH rows read, but never longer than SWEEP_MAX_WAIT. (Counted
# in rows, not seconds: a loaded machine's slow sweep of a few rows keeps its interval.)
SWEEP_MAX_WAIT = 30.0
RECENT_WINDOW = timedelta(minutes=10)
EXPIRE_BATCH = 500


def reap(broker: Broker, queues: list[str]) -> list[str]:
    moved = broker.reap(queues)
    if moved:
        logger.warning("Returned %d task(s) with expired leases to their queues: %s", len(moved), moved[:10])
    return moved


def sweep(broker: Broker, config: Settings, *, full: bool) -> int:
    """Publish unclaimed unready rows older than the grace that Redis does not hold; return how many."""
    return sweep_rows(broker, config, full=full)[0]


def sweep_rows(broker: Broker, config: Settings, *, full: bool) -> tuple[int, int]:
    """Sweep as sweep() does; return how many rows were published and how many were read.

    A regular sweep looks at rows enqueued in the last ten minutes (where failed publishes are)
    and at rows whose lease lapsed without an outcome; a full sweep, after Redis lost its data
    or at start, looks at every unready row. Rows are read in pages by (enqueued_at, id), not
    through a server-side cursor, so the sweep works behind PgBouncer's transaction pooling.
    """
    now = timezone.now()
    db = router.db_for_read(TaskRecord)
    rows = TaskRecord.objects.using(db).unclaimed()
    rows = rows.filter(enqueued_at__lt=now - timedelta(seconds=config.SWEEP_GRACE))
    if not full:
        # Recent rows (where failed publishes are) and rows of any age whose lease lapsed.
        rows = rows.filter(Q(enqueued_at__gte=now - RECENT_WINDOW) | Q(lease_expires_at__lt=now))
    published, read, after = 0, 0, None
    while True:
        page = (
            rows
            if after is None
            else rows.filter(Q(enqueued_at__gt=after[0]) | Q(enqueued_at=after[0], pk__gt=after[1]))
        )
        chunk = list(page.order_by("enqueued_at", "pk").values_list("id", "queue", "enqueued_at")[:SWEEP_BATCH])
        if not chunk:
            break
        after, read = (chunk[-1][2], chunk[-1][0]), read + len(chunk)
        known = broker.known_where([(task_id, queue) for task_id, queue, _ in chunk])
        missing = [row[0] for row, present in zip(chunk, known, strict=True) if not present]
        if missing:
            # A row read before a worker claimed, ran and acked it looks missing from Redis now;
            # read the missing ones again, so only rows still waiting are published.
            still = TaskRecord.objects.using(db).unclaimed().filter(pk__in=missing)
            items = [
                (Message(id=task_id, queue=queue, priority=priority), due_ms(eta))
                for task_id, queue, priority, eta in still.values_list("id", "queue", "priority", "eta")
            ]
            published += publish(items, from_sweeper=True)
        if len(chunk) < SWEEP_BATCH:
            break
    if published:
        logger.warning("Outbox sweep published %d task(s) that Redis did not hold", published)
    return published, read


def next_sweep(began: float, rows: int, interval: float) -> float:
    """When (time.monotonic()) the next sweep is due, after one that began at `began` and read `rows` rows."""
    paced = interval * rows / SWEEP_BATCH
    return began + max(interval, min(paced, SWEEP_MAX_WAIT))


def expire_results(config: Settings, *, batches: int = 10) -> int:
    """Delete finished rows (and fired chords) older than RESULT_EXPIRES; a few small batches per call."""
    if not config.RESULT_EXPIRES:
        return 0
    db = router.db_for_write(TaskRecord)
    cutoff = timezone.now() - timedelta(seconds=config.RESULT_EXPIRES)
    deleted = 0
    for _ in range(batches):
        ids = list(
            TaskRecord.objects.using(db)
            .ready()
            .filter(finished_at__lt=cutoff)
            .values_list("pk", flat=True)[:EXPIRE_BATCH]
        )
        if not ids:
            break
        deleted += TaskRecord.objects.using(db).filter(pk__in=ids).delete()[0]
    chords = Chord.objects.using(db).filter(fired_at__lt=cutoff).values_list("pk", flat=True)[:EXPIRE_BATCH]
    Chord.objects.using(db).filter(pk__in=list(chords)).delete()
    groups = GroupRecord.objects.using(db).filter(created_at__lt=cutoff).values_list("pk", flat=True)[:EXPIRE_BATCH]
    GroupRecord.objects.using(db).filter(pk__in=list(groups)).delete()  # saved groups expire like results
    if deleted:
        logger.info("Deleted %d finished task row(s) older than RESULT_EXPIRES=%ss", deleted, config.RESULT_EXPIRES)
    return deleted
