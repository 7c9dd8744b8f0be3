"""Keyed rate limits, concurrency caps and debounced starts in Redis (issue 21), apart from the queues.

Keys are named per task (and per key text, as the first 40 hex digits of its SHA-256, so any
key text makes a valid, unambiguous key name). A rate bucket and its index are coordination
keys (keys.py): "rlk:<task>:<digest>", "rlk-keys:<task>", beside the rate overrides. A cap
lives in the slot of the queue its task is claimed from, since its script checks holders
against that queue's owners and parks waiters in its scheduled set: "cap:<task>:<digest>"
(":-" for a cap without key), its waiters "cap-wait:<task>:<digest>" and its index
"cap-keys:<task>", each a queue key. So a cap counts the attempts of its task on one queue (a
task sent to two queues has a cap on each), and no script touches two slots. The scripts are in
lua/ and are registered here, not with the queue scripts. What is read back for the admin is
decoded by total functions: an entry someone else wrote is skipped, never raised.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.commands.core import Script

from djtasks.transport import decode
from djtasks.transport.connection import Batch, _source, converted
from djtasks.transport.coordination import Coordination
from djtasks.transport.queues import Claim, Queues

WHOLE_TASK = "-"  # the key part of a cap without concurrency_key (never a digest)
WAKE_TRIES = 5  # waiters tried per release: one that is no longer parked is skipped
SHOWN_KEYS = 50  # keys per task the admin reads, most recently used first
DUPLICATES_TTL_S = 86400


def key_part(key: str | None) -> str:
    return WHOLE_TASK if key is None else hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def waiter(queue: str, task_id: str) -> str:
    return json.dumps([queue, task_id])


def read_waiter(raw: bytes) -> tuple[str, str] | None:
    """A waiter's (queue, task id), or None if it is not one (written by someone else)."""
    parsed, defect = decode.loads(raw)
    if defect or not isinstance(parsed, list) or len(parsed) != 2:
        return None
    queue, task_id = parsed
    if not (isinstance(queue, str) and isinstance(task_id, str) and decode.text(queue) and decode.text(task_id)):
        return None
    return queue, task_id


@dataclass
class KeyState:
    """What Redis holds for one key of a task: its rate bucket, or its cap's holders and waiters."""

    key: str | None
    next_start_ms: int | None = None  # a rate bucket: ms until its next allowed start (0: now)
    holders: list[str] = field(default_factory=list)  # a cap: the ids holding a slot under a live lease
    waiting: int = 0


class Limits(Queues, Coordination):
    def _limit_scripts(self) -> dict[str, Script]:
        scripts: dict[str, Script] | None = self.__dict__.get("_limit_script_table")
        if scripts is None:
            names = ("keyed_rate", "cap_acquire", "cap_release", "wake", "reschedule")
            scripts = self.__dict__["_limit_script_table"] = {
                name: self.client.register_script(_source(name)) for name in names
            }
        return scripts

    def _cap_keys(self, queue: str, task_name: str, key: str | None) -> tuple[str, str]:
        part = key_part(key)
        return self.queue_key(queue, f"cap:{task_name}:{part}"), self.queue_key(queue, f"cap-wait:{task_name}:{part}")

    def _cap_index(self, queue: str, task_name: str) -> str:
        return self.queue_key(queue, f"cap-keys:{task_name}")

    def _rate_bucket(self, task_name: str, key: str) -> str:
        return self.coordination_key("rlk", task_name, key_part(key))

    # Keyed rate limits ------------------------------------------------------------------------

    @converted
    def take_keyed_rate_slot(self, task_name: str, key: str, interval_ms: float) -> int:
        """Take a start of the key's bucket: 0 if the task may start now, else the ms to wait."""
        keys = [
            self._rate_bucket(task_name, key),
            self.coordination_key("rl-overrides"),
            self.coordination_key("rlk-keys", task_name),
        ]
        return int(self._limit_scripts()["keyed_rate"](keys=keys, args=[task_name, interval_ms, key]))

    # Concurrency caps -------------------------------------------------------------------------

    @converted
    def acquire_slot(self, task_name: str, key: str | None, limit: int, claim: Claim, park_ms: int) -> int:
        """Take a slot for the claim (1), or park it in the scheduled set until a release wakes it (0).

        -1: the claim is no longer this worker's (its lease was lost); nothing was done.
        """
        queue = claim.queue
        slots, waiters = self._cap_keys(queue, task_name, key)
        keys = [slots, waiters, *self._keys(queue, "owners", "inflight", "scheduled", "deliveries")]
        keys.append(self._cap_index(queue, task_name))
        args: list[bytes | str | int] = [limit, claim.wire_id, claim.token, waiter(claim.queue, claim.id), park_ms]
        args += [key or "", int(key is not None)]
        return int(self._limit_scripts()["cap_acquire"](keys=keys, args=args))

    @converted
    def release_slot(self, task_name: str, key: str | None, claim: Claim) -> str | None:
        """Give the claim's slot back and wake the first parked waiter; return the id woken, if any."""
        slots, waiters = self._cap_keys(claim.queue, task_name, key)
        scripts = self._limit_scripts()
        for attempt in range(WAKE_TRIES):
            args: list[bytes | str] = [claim.wire_id, claim.token] if attempt == 0 else ["", ""]
            taken = scripts["cap_release"](keys=[slots, waiters], args=args)
            if not taken:
                return None
            parsed = read_waiter(taken[0])
            if parsed is None:
                decode.skipped(waiters, taken[0], "a waiter is a JSON list [queue, task id] of text")
                continue
            queue, woken = parsed
            if queue != claim.queue:
                decode.skipped(waiters, taken[0], "a waiter of another queue than the cap's")
                continue
            if scripts["wake"](keys=self._keys(queue, "scheduled", "ready", "messages", "seq"), args=[woken]):
                pipe = self.client.pipeline(transaction=False)
                for command in self.wake_commands(queue, 1):
                    pipe.execute_command(*command)
                pipe.execute()
                return woken
        return None

    # Debounced starts -------------------------------------------------------------------------

    @converted
    def reschedule(self, queue: str, task_id: str, due_ms: int) -> bool:
        """Move a waiting id's start to due_ms; False if Redis does not hold it waiting."""
        keys = self._keys(queue, "ready", "scheduled", "messages")
        return bool(self._limit_scripts()["reschedule"](keys=keys, args=[task_id, due_ms]))

    # Duplicate enqueues, counted for the admin --------------------------------------------------

    @converted
    def note_duplicate(self, task_id: str) -> None:
        """Count one enqueue that a unique task's row answered (kept a day after the last)."""
        key = self.coordination_key("dups", task_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(key, "n", 1)
        pipe.hset(key, "at", f"{time.time():.3f}")
        pipe.expire(key, DUPLICATES_TTL_S)
        pipe.execute()

    @converted
    def duplicates(self, task_id: str) -> tuple[int, float | None]:
        """How many enqueues the row answered (0 if none, or if the count expired) and when the last did."""
        key = self.coordination_key("dups", task_id)
        raw: Any = self.client.hmget(key, ["n", "at"])
        count, at = decode.integer(raw[0]) if raw[0] is not None else 0, decode.number(raw[1])
        if count is None or count < 0:
            decode.skipped(key, "n", "not a count")
            count = 0
        return count, at

    # For the admin ----------------------------------------------------------------------------

    @converted
    def rate_key_states(self, task_name: str) -> list[KeyState]:
        """The task's rate buckets by key, most recently used first (ms until each may start again)."""
        index = self.coordination_key("rlk-keys", task_name)
        keys = self._index(index)
        # The buckets and the clock script share the coordination slot: one round trip, on a cluster too
        # (whose pipelines refuse TIME).
        pipe = Batch(self.client)
        for key in keys:
            pipe.command(("GET", self._rate_bucket(task_name, key)))
        pipe.script(self.scripts.clock, [self.coordination_key("clock")], [])
        *tats, (now_s, now_us) = pipe.execute()
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        states = []
        for key, raw in zip(keys, tats, strict=True):
            tat = decode.number(raw) if raw is not None else None
            if raw is not None and tat is None:
                decode.skipped(self._rate_bucket(task_name, key), raw, "not a time in ms")
            states.append(KeyState(key, next_start_ms=max(0, int(tat - now_ms)) if tat is not None else 0))
        return states

    @converted
    def cap_states(self, task_name: str, keyed: bool) -> list[KeyState]:
        """Each known queue's caps of the task: per key, the ids holding a slot under a live lease and how many wait."""
        states = []
        for queue in sorted(self._queue_names()):
            keys: list[str | None] = list(self._index(self._cap_index(queue, task_name))) if keyed else [None]
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                slots, waiters = self._cap_keys(queue, task_name, key)
                pipe.hgetall(slots)
                pipe.zcard(waiters)
            replies = pipe.execute()
            owners_key = self.queue_key(queue, "owners")
            for key, slots, waiting in zip(keys, replies[::2], replies[1::2], strict=True):
                if not keyed and not slots and not waiting:
                    continue  # a queue this task does not use
                ids = [(decode.task_id(raw)[0], token) for raw, token in slots.items()]
                tokens = self.client.hmget(owners_key, [raw for raw in slots]) if slots else []
                live = [task_id for (task_id, token), owner in zip(ids, tokens, strict=True) if owner == token]
                states.append(KeyState(key, holders=sorted(live), waiting=int(waiting)))
        if not keyed and not states:
            states.append(KeyState(None))
        return states

    def _index(self, index: str) -> list[str]:
        raw_keys: Any = self.client.zrevrange(index, 0, SHOWN_KEYS - 1)
        keys = []
        for raw in raw_keys:
            key = decode.text(raw)
            if key:
                keys.append(key)
            else:
                decode.skipped(index, raw, "not a key (UTF-8 text without NUL)")
        return keys
