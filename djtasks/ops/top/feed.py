"""Read what the monitor shows, in a thread of its own: events, heartbeats, queue depths, final states.

Every refresh period the feed drains the events stream into the board (blocking in Redis while
nothing comes), then reads the heartbeats (control.status()), the queue depths and, for the
rows still open, the record's final states; then it publishes one Snapshot for the screen.
A failing source (Redis down, the database refusing, an unreadable heartbeat) becomes the
snapshot's error text, and the feed tries again next period: the monitor never dies of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import close_old_connections, connections

from djtasks.core.conf import get_settings
from djtasks.ops import control
from djtasks.ops.top.board import FINAL, Board, TaskRow, number, printable, reason
from djtasks.ops.top.stream import Cursor, position
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker

logger = logging.getLogger("djtasks")


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    queues: str
    concurrency: str
    active: str
    processed: str
    heartbeat_age: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    tasks: tuple[TaskRow, ...] = ()
    workers: tuple[Worker, ...] = ()
    queues: tuple[tuple[str, int, int, int], ...] = ()  # (queue, ready, scheduled, reserved)
    throughput: float = 0.0
    error: str = ""
    taken_at: float = 0.0
    catching_up: bool = True  # still reading the stream's history


def start_id(newest: str | None, since: float | None) -> str:
    """Return the stream id to read after: `since` seconds before the newest entry (None: all it holds).

    Entry ids begin with Redis' own clock in milliseconds, so no host's clock is involved.
    """
    if newest is None or since is None:
        return "0"
    try:
        newest_ms = int(newest.split("-")[0])
    except ValueError:
        return "0"
    return newest if since <= 0 else f"{max(newest_ms - int(since * 1000), 0)}-0"


class Heartbeats:
    """Heartbeat ages on this machine's clock: how long since each worker's heartbeat last changed.

    A worker's own timestamp is used once, when it is first seen (never below 0); after that its
    age is measured here, so a worker whose clock is off does not look dead or young.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.seen: dict[str, tuple[str, float]] = {}

    def age(self, worker: str, stamp: Any) -> float | None:
        now, stamp = self.clock(), printable(stamp)
        previous = self.seen.get(worker)
        if previous is None or previous[0] != stamp:
            first = _age_of(stamp) if previous is None else 0.0
            if first is None:
                return None
            self.seen[worker] = (stamp, now - first)
        return max(now - self.seen[worker][1], 0.0)


def _age_of(stamp: str) -> float | None:
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(time.time() - at.timestamp(), 0.0)


def worker_rows(status: list[dict[str, Any]], heartbeats: Heartbeats) -> tuple[Worker, ...]:
    rows = []
    for info in status:
        queues = info.get("queues")
        queue_text = ",".join(map(printable, queues)) if isinstance(queues, list) else printable(queues)
        worker = printable(info.get("worker"))
        rows.append(
            Worker(
                worker,
                queue_text,
                printable(info.get("concurrency")),
                printable(info.get("held")),
                printable(info.get("processed")),
                heartbeats.age(worker, info.get("heartbeat_at")),
            )
        )
    return tuple(rows)


class Feed:
    def __init__(self, board: Board, *, since: float | None, refresh: float = 1.0):
        self.board = board
        self.since = since
        self.refresh = refresh
        self.cursor: Cursor | None = None
        self.until = "0"  # the stream's newest entry when the feed began: history up to there
        self.catching_up = True
        self.heartbeats = Heartbeats()
        self.workers: tuple[Worker, ...] = ()
        self.queues: tuple[tuple[str, int, int, int], ...] = ()
        self.errors: dict[str, str] = {}
        self.latest = Snapshot()
        self.stopped = threading.Event()

    def run(self) -> None:
        """Poll until stopped: the body of the feed's thread (it closes its database connection)."""
        try:
            while not self.stopped.is_set():
                try:
                    self.poll()
                except Exception as exc:  # the thread must live on, or the screen would freeze unnoticed
                    logger.warning("tasktop feed: %s", reason(exc), exc_info=True)
                    self.latest = replace(self.latest, error=f"feed: {reason(exc)}", taken_at=time.time())
                    self.stopped.wait(self.refresh)
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopped.set()

    def poll(self) -> Snapshot:
        """Read for one refresh period, then publish (and return) a snapshot."""
        deadline = time.monotonic() + self.refresh
        while not self.stopped.is_set() and (left := deadline - time.monotonic()) > 0:
            if not self._guarded("events", lambda: self._read(left)):
                self.stopped.wait(left)
        self._guarded("workers", lambda: setattr(self, "workers", worker_rows(control.status(), self.heartbeats)))
        self._guarded("queues", self._read_queues)
        self._guarded("database", self._settle)
        self.latest = Snapshot(
            tasks=tuple(self.board.rows()),
            workers=self.workers,
            queues=self.queues,
            throughput=self.board.throughput(),
            error="; ".join(self.errors.values()),
            taken_at=time.time(),
            catching_up=self.catching_up,
        )
        return self.latest

    def _guarded(self, source: str, read: Callable[[], object]) -> bool:
        try:
            read()
        except Exception as exc:  # a viewer shows what failed and tries again next period
            self.errors[source] = f"{source}: {reason(exc, 160)}"
            logger.debug("tasktop could not read %s", source, exc_info=True)
            return False
        self.errors.pop(source, None)
        return True

    def _read(self, left: float) -> None:
        broker = get_broker()
        if self.cursor is None:
            newest = broker.last_event_id()
            self.until = newest or "0"
            self.cursor = Cursor(start_id(newest, self.since))
        self.catching_up = position(self.cursor.after) < position(self.until)
        # Each wait stays under the Redis socket timeout; the period goes on with the next one.
        longest = max(get_settings().SOCKET_TIMEOUT - 0.5, 0.1)
        block = None if self.catching_up else max(int(min(left, longest) * 1000), 1)
        got = self.cursor.read(broker, block_ms=block)
        self.board.ingest((event for _, event in got), arrived=None if self.catching_up else time.time())
        self.catching_up = position(self.cursor.after) < position(self.until)

    def _read_queues(self) -> None:
        def count(counts: dict[str, Any], key: str) -> int:
            return int(number(counts.get(key)) or 0)

        stats = get_broker().queue_stats()
        self.queues = tuple(
            (printable(name), count(c, "ready"), count(c, "scheduled"), count(c, "reserved"))
            for name, c in sorted(stats.items())
        )

    def _settle(self) -> None:
        ids = self.board.unfinished()
        if not ids:
            return
        close_old_connections()
        found = TaskRecord.objects.filter(pk__in=ids, state__in=FINAL).values_list(
            "id", "state", "worker", "started_at", "finished_at"
        )
        self.board.settle(
            (task_id, state, worker, (finished - started).total_seconds() if started and finished else None)
            for task_id, state, worker, started, finished in found
        )
