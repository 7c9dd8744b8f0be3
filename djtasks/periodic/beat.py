"""The scheduler duty: every worker parent runs it; each due periodic run fires once cluster-wide.

Exactly once, three guards deep:
1. a Redis run key per (periodic task, due slot), taken with SET NX, so one worker tries it;
2. a compare-and-set on the row's next_run_at in the same transaction as the task row, so a
   second worker (the key expired, Redis lost its data, or Redis is down) changes nothing;
3. the unique (periodic task, scheduled time) PeriodicRun row and the run's task id, derived
   from the same pair, so no path can write the same run twice.
The task row is written by calling.enqueue in that transaction and published after the commit;
a worker that dies after the commit leaves the row to the outbox sweep, never a missed run.

Time: "due" and the slots are read on Redis' clock (RedisClock), never on the worker's own, so a
worker whose clock runs ahead does not fire early and one behind does not fire late.

Catch-up: a run late by at most BEAT_MISFIRE_GRACE seconds fires for its own slot (so a busy
moment delays runs but skips none). After downtime, when the oldest due slot is later than
that, the missed slots collapse into one run for the latest of them, never a burst.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from djtasks.calling.enqueue import enqueue
from djtasks.core import registry
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable, ImproperlyDeclared
from djtasks.core.options import ExecutionOptions
from djtasks.core.spec import TaskDefaults
from djtasks.periodic.entries import Entry, parse_entry
from djtasks.periodic.models import PeriodicRun, PeriodicTask, Source
from djtasks.periodic.schedules import Schedule, ScheduleError, once
from djtasks.transport.broker import get_broker

logger = logging.getLogger("djtasks")
RUN_NAMESPACE = uuid.UUID("6f4c1e0a-5b2d-4c0e-9a7e-2d1f3b9c8a10")
# How long a worker owns a run key; after it, a worker that died holding one is replaced.
CLAIM_TTL_MS = 10_000
# The parent's loop may come round many times a second when children are busy; look at most this often.
MIN_TICK_SECONDS = 0.25
# Most runs one tick fires, so a schedule faster than the tick cannot keep the parent busy.
MAX_RUNS_PER_TICK = 100


def run_task_id(name: str, slot: datetime) -> str:
    """Return the task id of a periodic run: the same for every worker that computes it."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{name}@{slot.astimezone(UTC).isoformat()}"))


def plan(schedule: Schedule, due: datetime, now: datetime, grace: timedelta) -> tuple[datetime, datetime | None]:
    """Return (slot to fire, next slot) for a row due at `due`, applying the catch-up policy."""
    slot = due if now - due <= grace else schedule.latest_between(due, now)
    return slot, schedule.next_after(slot)


class RedisClock:
    """Redis' clock, the one every worker agrees on: read once per tick, this host's clock in between.

    sync() measures the offset between Redis' TIME and time.time() (one round trip); calling the
    clock adds it to time.time(). While Redis is down the last offset stands (0 before any read).
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def sync(self) -> None:
        try:
            before = time.time()
            redis_now = get_broker().redis_time()
            self.offset = redis_now - (before + time.time()) / 2
        except BrokerUnavailable as exc:
            logger.debug("Beat: Redis' clock not read (%s); keeping the offset %.3f s", exc, self.offset)

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset, tz=UTC)


class Beat:
    def __init__(
        self,
        worker_id: str,
        db: str,
        clock: Callable[[], datetime] | None = None,
        min_interval: float = MIN_TICK_SECONDS,
    ):
        self.worker_id = worker_id
        self.min_interval = min_interval
        self.db = db
        # Due-ness and slots on Redis' clock: workers whose clocks disagree fire each run on time, once.
        self.clock: Callable[[], datetime] = clock or RedisClock()
        self.synced = False
        self.next_look = 0.0

    def tick(self) -> int:
        """Fire due runs; a database outage is logged and retried at the next tick."""
        if time.monotonic() < self.next_look:
            return 0
        self.next_look = time.monotonic() + self.min_interval
        if isinstance(self.clock, RedisClock):
            self.clock.sync()
        try:
            return self._tick()
        except DatabaseError as exc:
            logger.warning("Beat %s: database error, retried next tick (%s)", self.worker_id, exc)
            connections[self.db].close_if_unusable_or_obsolete()
            return 0

    def _tick(self) -> int:
        """Sync BEAT_SCHEDULE once, then fire every due run; return how many were fired."""
        if not self.synced:
            sync_settings(self.db, self.clock())
            self.synced = True
        fired = 0
        grace = timedelta(seconds=get_settings().BEAT_MISFIRE_GRACE)
        for _ in range(MAX_RUNS_PER_TICK):
            now = self.clock()
            due = list(
                PeriodicTask.objects.using(self.db)
                .filter(enabled=True, next_run_at__lte=now)
                .order_by("next_run_at")[:MAX_RUNS_PER_TICK]
            )
            attempted = [self.fire(row, now, grace) for row in due]
            fired += sum(attempted)
            if not any(attempted) or fired >= MAX_RUNS_PER_TICK:
                break
        return fired

    def fire(self, row: PeriodicTask, now: datetime, grace: timedelta) -> bool:
        """Fire the due run of one row if this worker wins it; return True if it did."""
        assert row.next_run_at is not None
        due = row.next_run_at
        try:
            schedule = row.schedule
        except ScheduleError as exc:
            # Only a hand-edited database row gets here (the admin and the checks validate): stop it once.
            logger.error("Periodic task %s has a bad schedule and is disabled: %s", row.name, exc)
            PeriodicTask.objects.using(self.db).filter(pk=row.pk, next_run_at=due).update(enabled=False)
            return False
        slot, following = plan(schedule, due, now, grace)
        try:
            if not get_broker().acquire(f"beat:{row.pk}:{int(due.timestamp() * 1000)}", self.worker_id, CLAIM_TTL_MS):
                return False
        except BrokerUnavailable:
            pass  # the database fence below still lets only one worker fire it
        task = cast("TaskDefaults | None", registry.get(row.task))
        try:
            with transaction.atomic(using=self.db):
                advanced = (
                    PeriodicTask.objects.using(self.db)
                    .filter(pk=row.pk, enabled=True, next_run_at=due)
                    .update(
                        last_run_at=slot,
                        next_run_at=following,
                        total_run_count=F("total_run_count") + int(task is not None),
                        enabled=not isinstance(schedule, once),
                    )
                )
                if not advanced:
                    return False  # another worker fired it, or the row changed under us
                if task is None:
                    logger.error(
                        "Periodic task %s names unregistered task %s; run at %s skipped",
                        row.name,
                        row.task,
                        slot.isoformat(),
                    )
                    return False
                options = ExecutionOptions(
                    task_id=run_task_id(row.name, slot), queue=row.queue or None, priority=row.priority
                )
                try:
                    with transaction.atomic(using=self.db):
                        record = enqueue(task, list(row.args), dict(row.kwargs), options)
                        PeriodicRun.objects.using(self.db).create(
                            periodic_task_id=row.pk,
                            scheduled_for=slot,
                            fired_at=self.clock(),  # the clock the slot is on: the lateness shown is real
                            task_id=record.id,
                            worker=self.worker_id,
                        )
                except (ImproperlyDeclared, TypeError) as exc:
                    # Bad arguments or options: skip this run (the schedule moves on) rather than retry forever.
                    logger.error("Periodic task %s run at %s skipped: %s", row.name, slot.isoformat(), exc)
                    return False
        except IntegrityError:
            logger.info("Periodic task %s run at %s was already fired", row.name, slot.isoformat())
            return False
        if slot != due:
            logger.warning(
                "Periodic task %s missed runs since %s; caught up with one run for %s",
                row.name,
                due.isoformat(),
                slot.isoformat(),
            )
        logger.info("Periodic task %s fired: task id=%s slot=%s", row.name, record.id, slot.isoformat())
        return True


def run_now(row: PeriodicTask, worker: str = "admin") -> str:
    """Enqueue one run of a periodic task now, outside its schedule; return the task id."""
    task = cast("TaskDefaults", registry.lookup(row.task))
    db = row._state.db or "default"
    with transaction.atomic(using=db):
        record = enqueue(
            task, list(row.args), dict(row.kwargs), ExecutionOptions(queue=row.queue or None, priority=row.priority)
        )
        PeriodicRun.objects.using(db).create(
            periodic_task_id=row.pk, scheduled_for=timezone.now(), task_id=record.id, worker=worker, manual=True
        )
        PeriodicTask.objects.using(db).filter(pk=row.pk).update(total_run_count=F("total_run_count") + 1)
    return record.id


def sync_settings(db: str, now: datetime) -> None:
    """Create or update rows from BEAT_SCHEDULE; disable (keep) rows whose entry was removed.

    Settings own task, schedule, arguments and options of their rows; `enabled` is set when a row
    is created or comes back to the settings, and is otherwise the admin's to change.
    """
    entries = get_settings().BEAT_SCHEDULE or {}
    for name, raw in entries.items():
        try:
            entry = parse_entry(name, raw)
        except ScheduleError as exc:
            logger.error("BEAT_SCHEDULE entry skipped: %s", exc)
            continue
        try:
            with transaction.atomic(using=db):
                _sync_entry(db, entry, now)
        except IntegrityError:
            logger.info("Periodic task %s was created by another worker at the same time", name)
    removed = (
        PeriodicTask.objects.using(db)
        .filter(source=Source.SETTINGS)
        .exclude(name__in=list(entries))
        .update(source=Source.REMOVED, enabled=False)
    )
    if removed:
        logger.warning("%d periodic task(s) no longer in BEAT_SCHEDULE were disabled (kept, with history)", removed)


def _sync_entry(db: str, entry: Entry, now: datetime) -> None:
    row = PeriodicTask.objects.using(db).select_for_update().filter(name=entry.name).first()
    created = row is None
    if row is None:
        row = PeriodicTask(name=entry.name, enabled=entry.enabled)
    before = (row.task, row.args, row.kwargs, row.queue, row.priority, row.description, row.schedule_values())
    returning = row.source != Source.SETTINGS and not created
    row.task, row.args, row.kwargs = entry.task, entry.args, entry.kwargs
    row.queue, row.priority, row.description = entry.queue, entry.priority, entry.description
    row.set_schedule(entry.schedule)
    rescheduled = before[-1] != row.schedule_values()
    if returning and row.source == Source.REMOVED:
        row.enabled = entry.enabled
    row.source = Source.SETTINGS
    if (
        created
        or rescheduled
        or returning
        or (row.enabled and row.next_run_at is None and not isinstance(entry.schedule, once))
    ):
        row.plan_first_run(now)
    after = (row.task, row.args, row.kwargs, row.queue, row.priority, row.description, row.schedule_values())
    if created or returning or before != after or rescheduled:
        row.save(using=db)
        logger.info(
            "Periodic task %s %s from BEAT_SCHEDULE: %s",
            entry.name,
            "created" if created else "updated",
            entry.schedule.describe(),
        )
