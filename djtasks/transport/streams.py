"""What workers and observers share besides queues: events, counters, overrides, done notifications."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from djtasks.transport import decode
from djtasks.transport.connection import Command, Connection, converted, converted_errors
from djtasks.transport.decode import escaped

# A task's (soft, hard) time limits in seconds; None: no limit.
TimeLimits = tuple[float | None, float | None]
STATS = ("done", "runtime", "wait")
MAX_INTERVAL_MS = 1e12  # the rate-limit script ignores overrides outside 0..1e12 ms


def _timestamp(event: dict[str, Any]) -> bool:
    return decode.number(event.get("ts")) is not None


def _interval(key: str, field: bytes | str, value: bytes) -> float | None:
    """A rate override's ms between starts, or None (logged) where the rate-limit script ignores it."""
    interval = decode.number(value)
    if interval is None or not 0 <= interval <= MAX_INTERVAL_MS:
        decode.skipped(key, field, f"{escaped(value, 80)} is not a number of ms in 0..1e12; the declared rate applies")
        return None
    return interval


def _limit(value: object) -> float | None | bool:
    """A time limit in seconds (None: no limit), or False when it is not one."""
    if value is None:
        return None
    seconds = decode.number(value) if isinstance(value, int | float) else None
    if seconds is None or seconds < 0:
        return False
    return seconds or None


def _next_of(pubsub: Any, channels: set[bytes], deadline: float) -> str | None:
    """The type of the next message on one of these channels ("subscribe", "message"); None at the deadline."""
    while True:
        message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
        if message is None:
            if time.monotonic() >= deadline:
                return None
            continue
        channel = message["channel"]
        if (channel.encode() if isinstance(channel, str) else channel) in channels:
            return str(message["type"])


def _counters(key: str, raw: dict[bytes, bytes], width: int) -> dict[tuple[str, ...], float]:
    """Decode one counter hash: JSON lists of `width` labels (text; a histogram's slot may be an int)."""
    counters: dict[tuple[str, ...], float] = {}
    for field, value in raw.items():
        labels, defect = decode.loads(field)
        if defect or not isinstance(labels, list) or len(labels) != width:
            decode.skipped(key, field, defect or f"a counter's field is a JSON list of {width} labels")
            continue
        if width == 2 and type(labels[1]) is int:
            labels[1] = str(labels[1])
        if not all(isinstance(label, str) and "\x00" not in label for label in labels):
            decode.skipped(key, field, "a counter's labels are text")
            continue
        amount = decode.number(value) if labels[-1] == "sum" else decode.integer(value)
        if amount is None:
            decode.skipped(key, field, f"its value {escaped(value, 80)} is not a number")
            continue
        counters[tuple(labels)] = amount
    return counters


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
        return self.coordination_key("events")

    @converted
    def read_events(self, after: str, *, block_ms: int | None, count: int) -> list[tuple[str, dict[str, Any]]]:
        """Return (entry id, event) pairs after the entry id, in order; block up to block_ms if none yet.

        An event is a JSON object with a "type" (text) and a "ts" (a number); entries and events
        that are not are skipped (and logged).
        """
        key = self.events_key()
        reply: Any = self.client.xread({key: after}, count=count, block=block_ms) or []
        events = []
        for _, entries in reply:
            for raw_id, fields in entries:
                entry_id = raw_id.decode()
                batch, defect = decode.loads(fields.get(b"e", b""))
                if defect or not isinstance(batch, list):
                    decode.skipped(key, entry_id, defect or "field e is not a JSON list of events")
                    continue
                for event in batch:
                    if isinstance(event, dict) and isinstance(event.get("type"), str) and _timestamp(event):
                        events.append((entry_id, event))
                    else:
                        decode.skipped(key, entry_id, "an event that is not an object with a type and a time")
        return events

    @converted
    def last_event_id(self) -> str | None:
        """Return the id of the stream's newest entry, or None when the stream is empty."""
        newest: Any = self.client.xrevrange(self.events_key(), count=1)
        return newest[0][0].decode() if newest else None

    # Counters ---------------------------------------------------------------------------------

    def stats_key(self, name: str) -> str:
        """Return a counter hash: "done" (task, queue, state), "runtime" and "wait" (task, bucket)."""
        return self.coordination_key("stats", name)

    @converted
    def read_stats(self) -> tuple[dict[tuple[str, ...], float], ...]:
        """Return the done, runtime and wait counters, read in one round trip.

        done: (task, queue, state) -> count; runtime and wait: (task, bucket index as text, or
        "sum") -> count or sum of seconds. Fields and values that are not so are skipped (logged).
        """
        pipe = self.client.pipeline(transaction=False)
        for name in STATS:
            pipe.hgetall(self.stats_key(name))
        done, runtime, wait = (
            _counters(self.stats_key(name), raw, width)
            for name, raw, width in zip(STATS, pipe.execute(), (3, 2, 2), strict=True)
        )
        return done, runtime, wait

    # Rate limits ------------------------------------------------------------------------------

    @converted
    def take_rate_slot(self, task_name: str, interval_ms: float) -> int:
        keys = [self.coordination_key("rl", task_name), self.coordination_key("rl-overrides")]
        return int(self.scripts.ratelimit(keys=keys, args=[task_name, interval_ms]))

    @converted
    def rate_overrides(self) -> set[str]:
        """Return the names of the tasks whose rate is overridden (entries the script ignores left out)."""
        key = self.coordination_key("rl-overrides")
        raw: Any = self.client.hgetall(key)
        names = set()
        for field, value in raw.items():
            name = decode.text(field)
            if name is not None and _interval(key, field, value) is not None:
                names.add(name)
            elif name is None:
                decode.skipped(key, field, "not a task name (UTF-8 text without NUL)")
        return names

    @converted
    def rate_override(self, task_name: str) -> float | None:
        """Return a task's overriding interval between starts (ms; 0: no limit), or None if not overridden."""
        key = self.coordination_key("rl-overrides")
        interval: Any = self.client.hget(key, task_name)
        return None if interval is None else _interval(key, task_name, interval)

    @converted
    def set_rate_override(self, task_name: str, interval_ms: float) -> None:
        self.client.hset(self.coordination_key("rl-overrides"), task_name, interval_ms)

    @converted
    def clear_rate_override(self, task_name: str) -> None:
        self.client.hdel(self.coordination_key("rl-overrides"), task_name)

    # Time-limit overrides ---------------------------------------------------------------------

    @converted
    def set_time_limits(self, task_name: str, limits: TimeLimits) -> None:
        self.client.hset(self.coordination_key("timelimits"), task_name, json.dumps(limits))

    @converted
    def clear_time_limits(self, task_name: str) -> None:
        self.client.hdel(self.coordination_key("timelimits"), task_name)

    @converted
    def time_limits(self) -> dict[str, TimeLimits]:
        """Return every task's overriding (soft, hard) limits; unreadable entries are skipped."""
        key = self.coordination_key("timelimits")
        raw: Any = self.client.hgetall(key)
        limits: dict[str, TimeLimits] = {}
        for field, value in raw.items():
            name = decode.text(field)
            pair, defect = decode.loads(value)
            if name is None:
                decode.skipped(key, field, "not a task name (UTF-8 text without NUL)")
            elif defect or not isinstance(pair, list) or len(pair) != 2:
                decode.skipped(key, field, defect or "not a JSON list [soft, hard]")
            else:
                soft, hard = (_limit(limit) for limit in pair)
                if soft is False or hard is False:
                    decode.skipped(key, field, f"limits {escaped(value, 80)} are not seconds (a number >= 0, or null)")
                else:
                    limits[name] = (soft, hard)
        return limits

    # Done notifications -----------------------------------------------------------------------

    @contextmanager
    def subscription(self, task_ids: list[str], confirm_within: float = 1.0) -> Iterator[Callable[[float], bool]]:
        """Subscribe to the done channels of tasks; yield wait(timeout) -> True when one was notified.

        It yields once Redis has confirmed the subscription (or after confirm_within): the
        SUBSCRIBE and a worker's PUBLISH come on two connections, which Redis may run in either
        order, so a row read as soon as the SUBSCRIBE is sent can be unfinished while its
        notification is already dropped. Read after the confirmation, the row is finished or the
        notification comes. The thread's pub/sub connection is kept for its next wait (a new one
        cost a connect and a handshake, half the caller's time in a round trip): a wait that ends
        well unsubscribes; one that fails closes it. What an earlier wait left unread (its
        unsubscribe confirmation, a late notification) is skipped. True means "look", never "it
        is done".
        """
        channels = [self.done_channel(t) for t in task_ids]
        ours = {channel.encode() for channel in channels}
        kept = getattr(self.local, "pubsub", None)
        self.local.pubsub = None
        if kept is None or self.local.pubsub_pid != os.getpid():  # none yet, or the parent's before a fork
            kept = self.client.pubsub()
        pubsub = kept
        keep = False
        notified = False
        try:
            with converted_errors():
                pubsub.subscribe(*channels)
                unconfirmed, deadline = len(channels), time.monotonic() + confirm_within
                while unconfirmed:  # one confirmation per channel named, in order
                    kind = _next_of(pubsub, ours, deadline)
                    if kind is None:
                        break  # not confirmed in time: the caller's re-reads cover a lost notification
                    unconfirmed -= kind == "subscribe"
                    notified = notified or kind == "message"

            def wait(timeout: float) -> bool:
                nonlocal notified
                deadline = time.monotonic() + timeout
                with converted_errors():
                    while not notified:
                        kind = _next_of(pubsub, ours, deadline)
                        if kind is None:
                            return False
                        notified = kind == "message"  # else a confirmation that came after confirm_within
                notified = False
                return True

            yield wait
            with converted_errors():
                pubsub.unsubscribe(*channels)  # no reply awaited: its confirmation is read, and skipped, later
            keep = True
        finally:
            if keep:
                self.local.pubsub, self.local.pubsub_pid = pubsub, os.getpid()
            else:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass
