"""What the monitor knows about tasks: one row per task id, built from the events, settled by the record.

Events come from a Redis stream any process can write to, so every field is checked here:
an event that names no usable task id is skipped, a field of the wrong type is ignored, and
text is made printable. Nothing an event holds can raise out of Board.ingest.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from djtasks.core.states import FAILURE, READY_STATES, RETRY, REVOKED, STARTED, SUCCESS

RECEIVED = "RECEIVED"
# The order of the state filter's cycle; RECEIVED is Celery's name for a task a worker took.
STATES = (RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED)
EVENT_STATES = {
    "task-received": RECEIVED,
    "task-started": STARTED,
    "task-succeeded": SUCCESS,
    "task-failed": FAILURE,
    "task-retried": RETRY,
    "task-revoked": REVOKED,
}
FINAL = frozenset(READY_STATES)
# Outcomes of an attempt, counted in the throughput.
DONE = frozenset({SUCCESS, FAILURE, RETRY})
THROUGHPUT_WINDOW = 10.0
MAX_TEXT = 200
MAX_ID = 255  # a task row's primary key


def number(value: Any) -> float | None:
    """Return a finite int or float as a float; anything else (bools, strings, NaN) as None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def printable(value: Any, limit: int = MAX_TEXT) -> str:
    """Return a value as one printable line of at most `limit` characters, control characters escaped."""
    raw = value if isinstance(value, str) else ("" if value is None else repr(value))
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw[: limit * 2])
    return shown[:limit]


def reason(exc: BaseException, limit: int = 200) -> str:
    """Return an exception's message as one printable line (its class name if it has none)."""
    return printable(str(exc) or type(exc).__name__, limit)


def task_id_of(value: Any) -> str | None:
    """Return the value if it can be a task row's id (a non-empty string, no NUL, short enough)."""
    if isinstance(value, str) and value and len(value) <= MAX_ID and "\x00" not in value:
        return value
    return None


def parse_state(value: str) -> str:
    """Return the state named (any case; "" for all), or raise ValueError naming the choices."""
    state = value.strip().upper()
    if state and state not in STATES:
        raise ValueError(f"{value!r} is not a state; choose one of {', '.join(STATES)}")
    return state


@dataclass(slots=True)
class TaskRow:
    id: str
    name: str = "?"
    queue: str = "?"
    state: str = RECEIVED
    worker: str = ""
    seen_at: float = 0.0  # when the task first appeared (this machine's clock)
    changed_at: float = 0.0  # its last state change
    started_at: float | None = None
    runtime: float | None = None  # seconds, once an attempt ended (the worker measured it)


@dataclass(frozen=True, slots=True)
class Filters:
    state: str = ""  # one of STATES; "" for every state
    queue: str = ""
    name: str = ""  # a case-insensitive part of the task name

    def __bool__(self) -> bool:
        return bool(self.state or self.queue or self.name)

    def matches(self, row: TaskRow) -> bool:
        return (
            (not self.state or row.state == self.state)
            and (not self.queue or row.queue == self.queue)
            and (not self.name or self.name.lower() in row.name.lower())
        )

    def matches_event(self, event: Mapping[str, Any]) -> bool:
        """Filter the line dump: with a filter set, only the task events that match it pass."""
        if not self:
            return True
        kind = event.get("type")
        state = EVENT_STATES.get(kind) if isinstance(kind, str) else None
        if state is None:
            return False
        row = TaskRow("", printable(event.get("name")), printable(event.get("queue")), state)
        return self.matches(row)

    def next_state(self) -> Filters:
        cycle = ("", *STATES)
        return replace(self, state=cycle[(cycle.index(self.state) + 1) % len(cycle)])

    def next_queue(self, queues: Iterable[str]) -> Filters:
        cycle = ["", *sorted(set(queues) | ({self.queue} - {""}))]
        return replace(self, queue=cycle[(cycle.index(self.queue) + 1) % len(cycle)])

    def describe(self) -> str:
        if not self:
            return "no filter"
        parts = [f"state={self.state}" * bool(self.state), f"queue={self.queue}" * bool(self.queue)]
        parts.append(f"name~{self.name}" * bool(self.name))
        return " ".join(p for p in parts if p)


class Board:
    """The tasks seen, newest kept: at most max_tasks rows (finished ones are dropped first)."""

    def __init__(self, max_tasks: int = 1000, clock: Any = time.time):
        self.tasks: dict[str, TaskRow] = {}
        self.max_tasks = max_tasks
        self.clock = clock
        self.since = clock()
        self.done: deque[float] = deque()  # arrival times of the live outcome events

    def ingest(self, events: Iterable[Any], *, arrived: float | None) -> int:
        """Apply events in order and return how many described a task.

        arrived is this machine's time when live events were read: their times are taken from it,
        not from the worker's clock. For history (None) each event's own time counts, never later than now.
        """
        applied = sum(1 for event in events if isinstance(event, Mapping) and self._apply(event, arrived))
        if len(self.tasks) > self.max_tasks:
            self._trim()
        return applied

    def _apply(self, event: Mapping[str, Any], arrived: float | None) -> bool:
        kind = event.get("type")
        state = EVENT_STATES.get(kind) if isinstance(kind, str) else None
        task_id = task_id_of(event.get("id"))
        if state is None or task_id is None:
            return False
        now = self.clock()
        at = arrived if arrived is not None else min(max(number(event.get("ts")) or now, 0.0), now)
        row = self.tasks.get(task_id)
        if row is None:
            row = self.tasks[task_id] = TaskRow(task_id, seen_at=at)
        for field in ("name", "queue", "worker"):
            value = event.get(field)
            if isinstance(value, str) and value:
                setattr(row, field, printable(value))
        row.state, row.changed_at = state, at
        if state in (RECEIVED, STARTED):
            row.started_at, row.runtime = (at if state == STARTED else None), None
        else:
            runtime = number(event.get("runtime"))
            if runtime is None and row.started_at is not None:
                runtime = at - row.started_at
            row.runtime = None if runtime is None else max(runtime, 0.0)
        if state in DONE and arrived is not None:
            self.done.append(arrived)
        return True

    def _trim(self) -> None:
        by_age = sorted(self.tasks.values(), key=lambda r: (r.state not in FINAL, r.seen_at))
        for row in by_age[: len(self.tasks) - self.max_tasks]:
            del self.tasks[row.id]

    def settle(self, records: Iterable[tuple[str, str, str, float | None]]) -> None:
        """Take the final states the record holds (id, state, worker, runtime) for rows still open here."""
        for task_id, state, worker, runtime in records:
            row = self.tasks.get(task_id)
            if row is None or row.state in FINAL or state not in FINAL:
                continue
            row.state, row.changed_at = state, self.clock()
            row.worker = printable(worker) or row.worker
            row.runtime = runtime if runtime is not None else row.runtime

    def unfinished(self, limit: int = 500) -> list[str]:
        """Return the ids of the newest rows not yet in a final state."""
        rows = sorted((r for r in self.tasks.values() if r.state not in FINAL), key=lambda r: -r.seen_at)
        return [r.id for r in rows[:limit]]

    def throughput(self) -> float:
        """Return the outcomes (success, failure, retry) per second over the last 10 s of live events."""
        now = self.clock()
        while self.done and self.done[0] < now - THROUGHPUT_WINDOW:
            self.done.popleft()
        span = min(THROUGHPUT_WINDOW, max(now - self.since, 1.0))
        return len(self.done) / span

    def rows(self) -> list[TaskRow]:
        """Return copies of the rows, newest first."""
        return [replace(r) for r in sorted(self.tasks.values(), key=lambda r: -r.seen_at)]
