"""The numbers on the dashboard: SQL aggregates over a bounded window, Redis for queues and workers."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, router
from django.db.models import CharField, Count, Func, Q, QuerySet
from django.utils import timezone

from djtasks.admin.fleetdata import limited_names, scheduled
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.states import FAILURE, SUCCESS, State
from djtasks.record.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker

logger = logging.getLogger("djtasks")


@dataclass
class Bucket:
    start: datetime
    succeeded: int = 0
    failed: int = 0


@dataclass
class TaskStats:
    name: str
    total: int = 0
    failed: int = 0
    p50: float | None = None
    p95: float | None = None

    @property
    def failure_rate(self) -> float:
        return 100.0 * self.failed / self.total if self.total else 0.0


@dataclass
class QueueStats:
    name: str
    ready: int
    scheduled: int
    reserved: int
    oldest_age: float | None = None
    paused: str = ""  # why, when the queue is paused
    rate_limited: int = 0  # of its delayed tasks, those a rate limit holds back (among the first 500)
    rate_limited_until: datetime | None = None


@dataclass
class Snapshot:
    now: datetime
    states: dict[str, int]
    hour: list[Bucket]
    day: list[Bucket]
    tasks: list[TaskStats]
    queues: list[QueueStats] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    redis_error: str = ""


def snapshot(dead_letters: QuerySet[DeadLetter] | None = None) -> Snapshot:
    """Collect everything the dashboard shows, in a handful of queries; the latest of these dead letters."""
    now = timezone.now()
    snap = Snapshot(
        now=now,
        states=state_counts(),
        hour=throughput(now, minutes=True),
        day=throughput(now, minutes=False),
        tasks=per_task(now - timedelta(days=1)),
    )
    if dead_letters is not None:
        snap.dead_letters = list(dead_letters.order_by("-created_at")[:10])
    try:
        snap.queues = queues(now)
        snap.workers = workers(now)
    except BrokerUnavailable as exc:
        snap.redis_error = str(exc)
    return snap


class UTCBucket(Func):
    """The UTC minute or hour of a timestamp as text: cheap SQL on both databases (SQLite's Trunc is a
    Python function called per row, 1.6 s for a day of 1M rows/month)."""

    output_field = CharField()
    formats = {True: "%Y-%m-%d %H:%M", False: "%Y-%m-%d %H"}

    def __init__(self, expression: str, *, minutes: bool):
        self.minutes = minutes
        super().__init__(expression)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django keeps datetimes in SQLite as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
        length = 16 if self.minutes else 13
        return self.as_sql(compiler, connection, template=f"substr(%(expressions)s, 1, {length})", **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        pattern = "YYYY-MM-DD HH24:MI" if self.minutes else "YYYY-MM-DD HH24"
        template = f"to_char(%(expressions)s AT TIME ZONE 'UTC', '{pattern}')"
        return self.as_sql(compiler, connection, template=template, **extra)


def window(since: datetime, now: datetime) -> Q:
    """Rows finished since `since`: a closed range, and nothing else, so SQLite's planner walks the
    finished_at index instead of an index that spares it a sort (measured: 50x slower on 1M rows)."""
    return Q(finished_at__gte=since, finished_at__lt=now + timedelta(hours=1))


def state_counts() -> dict[str, int]:
    counts = dict(TaskRecord.objects.order_by().values_list("state").annotate(n=Count("*")))
    return {state: counts.get(state, 0) for state in State.values}


def throughput(now: datetime, *, minutes: bool) -> list[Bucket]:
    """Finished tasks per minute over the last hour, or per hour over the last day."""
    step = timedelta(minutes=1) if minutes else timedelta(hours=1)
    count = 60 if minutes else 24
    first = (now - step * (count - 1)).replace(second=0, microsecond=0)
    if not minutes:
        first = first.replace(minute=0)
    rows = (
        TaskRecord.objects.filter(window(first, now))
        .order_by()
        .annotate(bucket=UTCBucket("finished_at", minutes=minutes))
        .values_list("bucket", "state")
        .annotate(n=Count("*"))
    )
    buckets = [Bucket(first + step * i) for i in range(count)]
    for text, state, n in rows:
        index = int((datetime.strptime(text, UTCBucket.formats[minutes]).replace(tzinfo=UTC) - first) / step)
        if 0 <= index < count:
            if state == SUCCESS:
                buckets[index].succeeded += n
            elif state == FAILURE:
                buckets[index].failed += n
    return buckets


def per_task(since: datetime) -> list[TaskStats]:
    """Count, failures and run-time percentiles per task name, for tasks finished since `since`."""
    finished = TaskRecord.objects.filter(window(since, timezone.now())).order_by()
    stats: dict[str, TaskStats] = {}
    for name, state, n in finished.values_list("task_name", "state").annotate(n=Count("*")):
        if state in (SUCCESS, FAILURE):
            entry = stats.setdefault(name, TaskStats(name))
            entry.total += n
            entry.failed += n if state == FAILURE else 0
    for name, (p50, p95) in percentiles(since).items():
        if name in stats:
            stats[name].p50, stats[name].p95 = p50, p95
    return sorted(stats.values(), key=lambda s: (-s.total, s.name))


def percentiles(since: datetime) -> dict[str, tuple[float, float]]:
    using = router.db_for_read(TaskRecord)
    connection = connections[using]
    if connection.vendor != "sqlite":
        sql = (
            "SELECT task_name, percentile_cont(0.5) WITHIN GROUP (ORDER BY d), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY d) FROM (SELECT task_name, "
            "EXTRACT(EPOCH FROM finished_at - started_at) AS d FROM djtasks_task "
            "WHERE finished_at >= %s AND started_at IS NOT NULL AND state IN (%s, %s)) runs GROUP BY task_name"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [since, SUCCESS, FAILURE])
            return {name: (float(p50), float(p95)) for name, p50, p95 in cursor.fetchall()}
    # SQLite: rank each task's run times with window functions; only the rows around p50 and p95 come back.
    sql = (
        "SELECT task_name, rn, n, d FROM (SELECT task_name, d, ROW_NUMBER() OVER (PARTITION BY task_name ORDER BY d) "
        "- 1 AS rn, COUNT(*) OVER (PARTITION BY task_name) AS n FROM (SELECT task_name, "
        "(julianday(finished_at) - julianday(started_at)) * 86400.0 AS d FROM djtasks_task "
        "WHERE finished_at >= %s AND finished_at < %s AND state IN (%s, %s) AND started_at IS NOT NULL)) "
        "WHERE rn IN (CAST((n - 1) * 0.5 AS INTEGER), CAST((n - 1) * 0.5 AS INTEGER) + 1, "
        "CAST((n - 1) * 0.95 AS INTEGER), CAST((n - 1) * 0.95 AS INTEGER) + 1)"
    )
    ranked: dict[str, dict[int, float]] = defaultdict(dict)
    sizes: dict[str, int] = {}
    upper = timezone.now() + timedelta(hours=1)
    with connection.cursor() as cursor:
        cursor.execute(sql, [_sqlite_time(since), _sqlite_time(upper), SUCCESS, FAILURE])
        for name, rank, size, seconds in cursor.fetchall():
            ranked[name][rank] = seconds
            sizes[name] = size
    return {
        name: (_interpolate(values, sizes[name], 0.5), _interpolate(values, sizes[name], 0.95))
        for name, values in ranked.items()
    }


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _interpolate(ranked: dict[int, float], size: int, q: float) -> float:
    """percentile_cont from the two ranks around position (size - 1) * q."""
    position = (size - 1) * q
    low = math.floor(position)
    high = min(low + 1, size - 1)
    return ranked[low] + (ranked[high] - ranked[low]) * (position - low)


def queues(now: datetime) -> list[QueueStats]:
    broker = get_broker()
    result = [
        QueueStats(name, ready=counts["ready"], scheduled=counts["scheduled"], reserved=counts["reserved"])
        for name, counts in broker.queue_stats().items()
    ]
    heads = {q.name: broker.oldest_ready(q.name) for q in result}
    rows = TaskRecord.objects.filter(id__in=[h for h in heads.values() if h]).values_list("id", "enqueued_at", "eta")
    waiting_since = {task_id: max(enqueued, eta or enqueued) for task_id, enqueued, eta in rows}
    for q in result:
        since = waiting_since.get(heads[q.name] or "")
        q.oldest_age = None if since is None else max(0.0, (now - since).total_seconds())
    paused = broker.paused([q.name for q in result])
    names = limited_names(broker)
    for q in result:
        q.paused = paused.get(q.name, "")
        if q.scheduled and names:
            held = [w for w in scheduled(broker, [q.name], limit=500) if w.rate_limited]
            q.rate_limited = len(held)
            q.rate_limited_until = max((w.due for w in held), default=None)
    return result


def workers(now: datetime) -> list[dict[str, Any]]:
    found = []
    # Decoded in the transport (an unreadable heartbeat is skipped); the age is on Redis' clock.
    for beat in get_broker().heartbeats().values():
        info = dict(beat.info)
        info["heartbeat_age"] = beat.age_s
        info["active"] = list(info.get("active") or [])
        found.append(info)
    return sorted(found, key=lambda w: str(w.get("id")))
