"""What workers and observers share besides queues: events, counters, overrides, done notifications."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from djtasks.transport.connection import Command, Connection, converted, converted_errors

# A task's (soft, hard) time limits in seconds; None: no limit.
TimeLimits = tuple[float | None, float | None]
STATS = ("done", "runtime", "wait")


def add_events(key: str, maxlen: int, payload: str) -> Command:
    """Return the XADD of one events entry (a JSON list in field "e"), trimming to about maxlen entries."""
    return ("XADD", key, "MAXLEN", "~", maxlen, "*", "e", payload)


def increment(key: str, field: str, amount: int) -> Command:
    """Return the HINCRBY of one counter field."""
    return ("HINCRBY", key, field, amount)


def increment_float(key: str, field: str, amount: float) -> Command:
    """Return the HINCRBYFLOAT of one sum field."""
    return ("HINCRBYFLOAT", key, field, amount)


class Streams(Connection):
    # The events stream ------------------------------------------------------------------------

    def events_key(self) -> str:
        return self.key("events")

    @converted
    def read_events(self, after: str, *, block_ms: int | None, count: int) -> list[tuple[str, dict[str, Any]]]:
        """Return (entry id, event) pairs after the entry id, in order; block up to block_ms if none yet."""
        reply: Any = self.client.xread({self.events_key(): after}, count=count, block=block_ms) or []
        events = []
        for _, entries in reply:
            for entry_id, fields in entries:
                try:
                    batch = json.loads(fields[b"e"])
                except (KeyError, ValueError):
                    continue
                events += [(entry_id.decode(), event) for event in batch if isinstance(event, dict)]
        return events

    @converted
    def last_event_id(self) -> str | None:
        """Return the id of the stream's newest entry, or None when the stream is empty."""
        newest: Any = self.client.xrevrange(self.events_key(), count=1)
        return newest[0][0].decode() if newest else None

    # Counters ---------------------------------------------------------------------------------

    def stats_key(self, name: str) -> str:
        """Return a counter hash: "done" (task, queue, state), "runtime" and "wait" (task, bucket)."""
        return self.key("stats", name)

    @converted
    def read_stats(self) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]]:
        """Return the done, runtime and wait counter hashes (field: raw value), read in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name in STATS:
            pipe.hgetall(self.stats_key(name))
        done, runtime, wait = ({k.decode(): v for k, v in raw.items()} for raw in pipe.execute())
        return done, runtime, wait

    # Rate limits ------------------------------------------------------------------------------

    @converted
    def take_rate_slot(self, task_name: str, interval_ms: float) -> int:
        keys = [self.key("rl", task_name), self.key("rl-overrides")]
        return int(self.scripts.ratelimit(keys=keys, args=[task_name, interval_ms]))

    @converted
    def rate_overrides(self) -> set[str]:
        return {name.decode() for name in self.client.hkeys(self.key("rl-overrides"))}  # type: ignore[union-attr]

    @converted
    def rate_override(self, task_name: str) -> float | None:
        """Return a task's overriding interval between starts (ms; 0: no limit), or None if not overridden."""
        interval: Any = self.client.hget(self.key("rl-overrides"), task_name)
        return None if interval is None else float(interval)

    @converted
    def set_rate_override(self, task_name: str, interval_ms: float) -> None:
        self.client.hset(self.key("rl-overrides"), task_name, interval_ms)

    @converted
    def clear_rate_override(self, task_name: str) -> None:
        self.client.hdel(self.key("rl-overrides"), task_name)

    # Time-limit overrides ---------------------------------------------------------------------

    @converted
    def set_time_limits(self, task_name: str, limits: TimeLimits) -> None:
        self.client.hset(self.key("timelimits"), task_name, json.dumps(limits))

    @converted
    def clear_time_limits(self, task_name: str) -> None:
        self.client.hdel(self.key("timelimits"), task_name)

    @converted
    def time_limits(self) -> dict[str, TimeLimits]:
        """Return every task's overriding (soft, hard) limits; unreadable entries are skipped."""
        raw: Any = self.client.hgetall(self.key("timelimits"))
        limits: dict[str, TimeLimits] = {}
        for name, value in raw.items():
            try:
                soft, hard = json.loads(value)
            except (ValueError, TypeError):
                continue
            limits[name.decode()] = (soft, hard)
        return limits

    # Done notifications -----------------------------------------------------------------------

    @contextmanager
    def subscription(self, task_ids: list[str]) -> Iterator[Callable[[float], bool]]:
        """Subscribe to the done channels of tasks; yield wait(timeout) -> True when one finished."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            with converted_errors():
                pubsub.subscribe(*[self.done_channel(t) for t in task_ids])

            def wait(timeout: float) -> bool:
                with converted_errors():
                    return pubsub.get_message(timeout=timeout) is not None

            yield wait
        finally:
            try:
                pubsub.close()
            except redis.RedisError:
                pass
