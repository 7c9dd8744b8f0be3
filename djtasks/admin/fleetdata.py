"""What the fleet pages show: each task's limits and where they come from, and why waiting tasks wait.

Limits: a task's rate and time limits are its declared ones, else the settings' (time limits:
SOFT_TIME_LIMIT, TIME_LIMIT), unless a runtime override (taskctl rate_limit / time_limit, or the
admin) replaces them for every worker. A worker's own --soft-time-limit / --time-limit options
sit between the declaration and the settings on that worker only; the web side cannot see them.

Waiting: a queue's scheduled set holds countdowns and etas, retries and tasks a rate limit put
back. The row tells them apart: RETRY is a retry, an eta that matches the due time is a delay,
and a task with a rate limit due later than its eta waits for its limiter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from djtasks.calling.overrides import read_time_limits
from djtasks.core import registry
from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.rates import parse_rate
from djtasks.core.states import RETRY
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Broker, get_broker

DECLARED, SETTING, OVERRIDE, NONE = "declared", "setting", "runtime override", "none"


@dataclass(frozen=True)
class Limit:
    value: str
    source: str


@dataclass(frozen=True)
class TaskLimits:
    name: str
    queue: str
    rate: Limit
    soft: Limit
    hard: Limit
    rate_overridden: bool
    time_overridden: bool


def as_rate(interval_ms: float) -> str:
    """A rate as people write it, from the ms between starts ("10/m"); "no limit" for 0."""
    if interval_ms <= 0:
        return "no limit"
    for unit, span in (("s", 1000.0), ("m", 60_000.0), ("h", 3_600_000.0)):
        count = span / interval_ms
        if count >= 1 and abs(count - round(count)) < 1e-6:
            return f"{round(count)}/{unit}"
    return f"{3_600_000.0 / interval_ms:.3g}/h"


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:g} s"


def task_limits(broker: Broker, config: Settings) -> list[TaskLimits]:
    """Every registered task's rate and time limits, with their sources."""
    rates = broker.rate_intervals()
    times = read_time_limits(broker)
    found = []
    for name in registry.names():
        task: Any = registry.get(name)
        declared_rate = getattr(task, "rate_limit", None)
        if name in rates:
            rate = Limit(as_rate(rates[name]), OVERRIDE)
        elif declared_rate:
            rate = Limit(f"{declared_rate} ({as_rate(parse_rate(declared_rate))})", DECLARED)
        else:
            rate = Limit("no limit", NONE)
        if name in times:
            soft_s, hard_s = times[name]
            soft, hard = Limit(_seconds(soft_s), OVERRIDE), Limit(_seconds(hard_s), OVERRIDE)
        else:
            soft = _time(getattr(task, "soft_time_limit", None), config.SOFT_TIME_LIMIT, "SOFT_TIME_LIMIT")
            hard = _time(getattr(task, "time_limit", None), config.TIME_LIMIT, "TIME_LIMIT")
        queue = str(getattr(task, "queue_name", "") or config.DEFAULT_QUEUE)
        found.append(TaskLimits(name, queue, rate, soft, hard, name in rates, name in times))
    return found


def _time(declared: float | None, setting: float | None, key: str) -> Limit:
    if declared:
        return Limit(_seconds(declared), DECLARED)
    if setting:
        return Limit(_seconds(setting), f"{SETTING} ({key})")
    return Limit("none", NONE)


@dataclass
class Waiting:
    """A task in a queue's scheduled set, and why it waits."""

    task_id: str
    queue: str
    due: datetime
    name: str = ""
    state: str = ""
    why: str = ""
    rate_limited: bool = False


def why_waiting(row: TaskRecord | None, due: datetime, rate_limited_names: set[str]) -> tuple[str, bool]:
    """Say why a scheduled id waits until `due`, and whether it is a limiter that holds it."""
    if row is None:
        return "no task row (it expired, or was never committed)", False
    if row.state == RETRY:
        return f"retry {row.retries}", False
    if row.eta is not None and abs((row.eta - due).total_seconds()) <= 1.0:
        return "eta or countdown", False
    if row.task_name in rate_limited_names and (row.eta is None or due > row.eta):
        return f"rate-limited until {due.isoformat(sep=' ', timespec='seconds')}", True
    return "held back (its row was busy when it was claimed)", False


def limited_names(broker: Broker) -> set[str]:
    """The tasks a rate limit applies to now: declared, or set at runtime (an override of 0 lifts it)."""
    rates = broker.rate_intervals()
    names = {name for name, interval in rates.items() if interval > 0}
    for name in registry.names():
        if name not in rates and getattr(registry.get(name), "rate_limit", None):
            names.add(name)
    return names


def scheduled(broker: Broker, queues: list[str], limit: int = 200) -> list[Waiting]:
    """The soonest `limit` scheduled tasks of these queues, with their rows and why they wait."""
    found = [
        Waiting(task_id, queue, datetime.fromtimestamp(at, tz=UTC))
        for queue in queues
        for task_id, at in broker.scheduled(queue, limit)
    ]
    found = sorted(found, key=lambda w: w.due)[:limit]
    explain(found, limited_names(broker))
    return found


def explain(waiting: list[Waiting], rate_limited_names: set[str]) -> None:
    rows = TaskRecord.objects.only("id", "task_name", "state", "eta", "retries").in_bulk([w.task_id for w in waiting])
    for item in waiting:
        row = rows.get(item.task_id)
        item.name, item.state = (row.task_name, row.state) if row else ("", "")
        item.why, item.rate_limited = why_waiting(row, item.due, rate_limited_names)


def waiting_texts(broker: Broker, rows: list[TaskRecord]) -> dict[str, str]:
    """For rows of a page that wait in a scheduled set: what to say under their state ("rate-limited until ...")."""
    unready = [row for row in rows if row.state in ("PENDING", "RETRY") and not row.is_running]
    by_queue: dict[str, list[TaskRecord]] = {}
    for row in unready:
        by_queue.setdefault(row.queue, []).append(row)
    names = limited_names(broker) if unready else set()
    texts = {}
    for queue, members in by_queue.items():
        due = broker.due_times(queue, [row.pk for row in members])
        for row in members:
            if row.pk in due:
                at = datetime.fromtimestamp(due[row.pk], tz=UTC)
                texts[row.pk] = why_waiting(row, at, names)[0]
    return texts


def waiting_on_page(rows: list[TaskRecord]) -> dict[str, str]:
    """waiting_texts from this process's Redis; nothing when Redis is unreachable (it only decorates a page)."""
    try:
        return waiting_texts(get_broker(), rows)
    except BrokerUnavailable:
        return {}


def mark_waiting(rows: list[TaskRecord]) -> None:
    """Give each row of a task list its waiting_text (empty when it does not wait in a scheduled set)."""
    texts = waiting_on_page(rows)
    for row in rows:
        row.waiting_text = texts.get(row.pk, "")  # type: ignore[attr-defined]
