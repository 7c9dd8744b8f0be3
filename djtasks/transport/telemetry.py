"""Task and worker events (a bounded Redis stream) and the counters behind the metrics view.

Workers buffer what happened and write it in the round trip that acks the outcomes, so events
and counters cost no extra round trip on the hot path; the events of one write share one stream
entry, so the stream's length (EVENTS_MAXLEN) counts writes, each of one or more events.
Counters live in Redis hashes because workers are separate processes: the metrics view reads
them at scrape time.
"""

from __future__ import annotations

import json
import logging
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.states import FAILURE, RETRY, REVOKED, SUCCESS
from djtasks.transport.broker import Broker
from djtasks.transport.connection import Command
from djtasks.transport.streams import add_events, increment, increment_float

logger = logging.getLogger("djtasks")

# Upper bounds (seconds) of the run-time and wait-time histogram buckets; +Inf is implied.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
OUTCOME_EVENTS = {SUCCESS: "task-succeeded", FAILURE: "task-failed", RETRY: "task-retried", REVOKED: "task-revoked"}


def bucket_index(seconds: float) -> int:
    """Return the index of the first bucket whose upper bound is >= seconds (len(BUCKETS): +Inf)."""
    return bisect_left(BUCKETS, seconds)


@dataclass
class Histograms:
    """Bucket counts and sums per task, accumulated between two writes."""

    buckets: Counter[tuple[str, int]] = field(default_factory=Counter)
    sums: dict[str, float] = field(default_factory=dict)

    def observe(self, task_name: str, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.buckets[(task_name, bucket_index(seconds))] += 1
        self.sums[task_name] = self.sums.get(task_name, 0.0) + seconds

    def commands(self, key: str) -> list[Command]:
        """Return the increments of the hash `key` that add what was observed."""
        counts = [increment(key, json.dumps([task_name, index]), n) for (task_name, index), n in self.buckets.items()]
        sums = [increment_float(key, json.dumps([task_name, "sum"]), total) for task_name, total in self.sums.items()]
        return counts + sums

    def __bool__(self) -> bool:
        return bool(self.buckets)


class Recorder:
    """Collect a worker's events and counters; write them into the next pipeline (or flush)."""

    def __init__(self, broker: Broker, config: Settings, worker_id: str):
        self.broker = broker
        self.worker_id = worker_id
        self.events_on = config.ENABLE_EVENTS
        self.maxlen = config.EVENTS_MAXLEN
        self.events: list[dict[str, Any]] = []
        self.done: Counter[tuple[str, str, str]] = Counter()
        self.runtime = Histograms()
        self.wait = Histograms()

    def event(self, kind: str, **fields: Any) -> None:
        if self.events_on:
            if "exception" in fields:
                # An event names the exception's class, never its message: messages may quote a task's
                # arguments, and anyone who reads Redis reads the stream. ("path.Class: message" -> class.)
                fields["exception"] = str(fields["exception"]).split(":", 1)[0].strip()[:255]
            self.events.append({"type": kind, "ts": time.time(), "worker": self.worker_id, **fields})

    def revoked(self, task_id: str, name: str, queue: str, reason: str) -> None:
        self.done[(name, queue, REVOKED)] += 1
        self.event("task-revoked", id=task_id, name=name, queue=queue, reason=reason)

    def drain(self) -> list[Command]:
        """Return the Redis commands that write everything collected, and forget it.

        The events of one write share one stream entry (a JSON list): one XADD per round trip.
        """
        commands: list[Command] = []
        if self.events:
            commands.append(add_events(self.broker.events_key(), self.maxlen, json.dumps(self.events, default=str)))
        done = self.broker.stats_key("done")
        for (name, queue, state), count in self.done.items():
            commands.append(increment(done, json.dumps([name, queue, state]), count))
        commands += self.runtime.commands(self.broker.stats_key("runtime"))
        commands += self.wait.commands(self.broker.stats_key("wait"))
        self.events, self.done, self.runtime, self.wait = [], Counter(), Histograms(), Histograms()
        return commands

    def __bool__(self) -> bool:
        return bool(self.events or self.done or self.runtime or self.wait)

    def flush(self) -> None:
        """Write what was collected in a round trip of its own (nothing to do if empty)."""
        if not self:
            return
        try:
            self.broker.send_commands(self.drain())
        except BrokerUnavailable as exc:
            logger.warning("Events and counters of worker %s not written (%s)", self.worker_id, exc)


def emit(broker: Broker, config: Settings, kind: str, **fields: Any) -> None:
    """Write one event now (worker lifecycle, a revoke outside any worker); never raises."""
    recorder = Recorder(broker, config, str(fields.pop("worker", "")))
    recorder.event(kind, **fields)
    recorder.flush()
