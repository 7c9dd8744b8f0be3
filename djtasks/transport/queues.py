"""The queues: claim, ack, release, extend and reap messages, each script call on one queue's keys."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from djtasks.transport import decode
from djtasks.transport.connection import Batch, Command, converted
from djtasks.transport.publishing import Publishing

PROMOTE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Claim:
    """A reserved message: owned by this worker until acked, released, or its lease expires."""

    id: str
    envelope: bytes
    deliveries: int
    token: str
    queue: str
    # An id that cannot be a task id (decode.task_id): its bytes as Redis holds them (`id` is
    # then their escaped text) and why. Such a claim is dead-lettered without a database lookup.
    raw_id: bytes | None = None
    defect: str = ""

    @property
    def wire_id(self) -> bytes:
        """The id as Redis holds it."""
        return self.id.encode() if self.raw_id is None else self.raw_id


@dataclass(frozen=True, slots=True)
class Reserved:
    """What a claim reserved, and whether it left its queues with nothing ready.

    idle_s: None while ids may still be ready (one was left, a queue is paused, or not every queue
    was asked); else the seconds until the first scheduled id is due (inf: none is). Until then
    only a publish (which pushes a wake-up token) brings work that is ready.
    """

    claims: list[Claim]
    idle_s: float | None


def _sooner(idle: float | None, other: float | None) -> float | None:
    """Two queues' Reserved.idle_s together: None (work may be ready) if either is, else the sooner due time."""
    return None if idle is None or other is None else min(idle, other)


class Queues(Publishing):
    # Consuming --------------------------------------------------------------------------------

    def _keys(self, queue: str, *kinds: str) -> list[str]:
        return [self.queue_key(queue, kind) for kind in kinds]

    @converted
    def claim(
        self, queues: list[str], token_prefix: str, lease_ms: int, *, limit: int = 1, deep: int = 0
    ) -> list[Claim]:
        """Reserve up to `limit` ids per queue (more than one only while the queue stays deeper than `deep`)."""
        return self.reserve(queues, token_prefix, lease_ms, limit=limit, deep=deep).claims

    @converted
    def reserve(
        self,
        queues: list[str],
        token_prefix: str,
        lease_ms: int,
        *,
        limit: int = 1,
        deep: int = 0,
        acks: list[Claim] | None = None,
        also: Iterable[Command] = (),
        wait: float | None = None,
    ) -> Reserved:
        """Claim, and say whether the queues were left with nothing ready (Reserved.idle_s).

        One script call per queue, each on that queue's keys. Taking one id (limit 1: the tasks
        are slow, or this is a first claim), the queues are asked in turn and the first that has
        work gives it, so a slow task never holds a later queue's task behind it. Taking a batch,
        every queue is asked in one pipeline (one round trip) and the batch holds the first
        queue's ids first: preferred in the order given, and no queue starved by another.
        `acks` (claims whose outcomes are recorded, their readers woken as ack_many does) and
        `also` (plain commands) go in the first round trip, before the claims. `wait` (seconds): first
        block for a wake-up token in the same round trip (Redis runs a client's commands in order).
        """
        if not queues or (wait is not None and self.clustered):  # (on a cluster the wake keys are on other nodes)
            if acks or also:  # apart, before the wait
                self.ack_many(acks or [], also=also)
            acks, also = None, ()
            if not queues:  # nothing to claim nor to wake on: the wait is a sleep, so a caller never spins
                if (blpop := self._wake_wait(queues, wait)) is not None:
                    time.sleep(float(blpop[-1]))
                return Reserved([], None)
            self.wait_for_work(queues, wait)
            wait = None
        if limit > 1:
            return self._claim_calls(queues, token_prefix, lease_ms, limit, deep, acks=acks, also=also, wait=wait)
        idle: float | None = math.inf
        for index, queue in enumerate(queues):
            reserved = self._claim_calls(
                [queue], token_prefix, lease_ms, 1, deep, first=index, acks=acks, also=also, wait=wait
            )
            acks, also, wait = None, (), None
            idle = _sooner(idle, reserved.idle_s)
            if reserved.claims:  # the queues after this one were not asked
                return Reserved(reserved.claims, idle if index == len(queues) - 1 else None)
        return Reserved([], idle)

    def _claim_calls(
        self,
        queues: list[str],
        prefix: str,
        lease_ms: int,
        limit: int,
        deep: int,
        first: int = 0,
        acks: list[Claim] | None = None,
        also: Iterable[Command] = (),
        wait: float | None = None,
    ) -> Reserved:
        pipe = Batch(self.client)
        self._ack_calls(pipe, acks or [], notify=True)
        for command in also:
            pipe.command(command)
        ahead = len(pipe.entries)
        if blocked := (blpop := self._wake_wait(queues, wait)) is not None:
            pipe.command(blpop)
        for index, queue in enumerate(queues, start=first):
            # "paused": the queue's pause flag (transport/fleet.py), which the script honours.
            keys = self._keys(
                queue, "messages", "owners", "deliveries", "seq", "ready", "scheduled", "inflight", "paused"
            )
            # Tokens must differ between queues of one round: the first queue's keep the plain prefix.
            token = prefix if index == 0 else f"{prefix}/{index}"
            pipe.script(self.scripts.claim, keys, [lease_ms, token, PROMOTE_LIMIT, limit, deep])
        claims = []
        idle: float | None = math.inf
        replies = pipe.execute(strict=False)
        self.refused(pipe.entries[:ahead], replies[:ahead])
        refusal = replies.pop(ahead) if blocked else None
        for queue, (taken, orphans, recounted, idle_ms) in zip(queues, replies[ahead:], strict=True):
            for i in range(0, len(orphans), 2):
                reason = "no message is stored for this id (acked already, or written by hand); dropped"
                kind = "ready" if int(orphans[i]) == 5 else "scheduled"
                decode.skipped(self.queue_key(queue, kind), orphans[i + 1], reason)
            for raw in recounted:
                reason = "its delivery count was not an integer; counted afresh from 1"
                decode.skipped(self.queue_key(queue, "deliveries"), raw, reason)
            claims += [_claim(taken[i : i + 4], queue) for i in range(0, len(taken), 4)]
            quiet = None if idle_ms == -1 else math.inf if idle_ms == -2 else int(idle_ms) / 1000
            idle = _sooner(idle, quiet)
        if isinstance(refusal, Exception) and not claims:
            raise refusal  # the wait failed (a wake key that is not a list): as wait_for_work(), the caller backs off
        return Reserved(claims, idle)

    def claim_one(self, queues: list[str], token_prefix: str, lease_ms: int) -> Claim | None:
        return next(iter(self.claim(queues, token_prefix, lease_ms)), None)

    @converted
    def wait_for_work(self, queues: list[str], timeout: float | None) -> bool:
        """Block until a wake token arrives on one of the queues, or the timeout passes.

        The wake-up lists are coordination keys: one BLPOP covers every queue, on a cluster too."""
        return (blpop := self._wake_wait(queues, timeout)) is not None and self.client.execute_command(
            *blpop
        ) is not None

    def _wake_wait(self, queues: list[str], timeout: float | None) -> Command | None:
        """The BLPOP that waits for a wake-up token (wait_for_work's and reserve's); None: do not block.

        Under 1 ms the work is due now (and BLPOP would read 0 as "wait forever").
        """
        return None if timeout is None or timeout < 0.001 else ("BLPOP", *map(self.wake_key, queues), timeout)

    @converted
    def ack(self, claim: Claim, *, notify: bool = True) -> bool:
        return self.ack_many([claim], notify=notify)[0]

    @converted
    def ack_many(self, claims: list[Claim], *, notify: bool = True, also: Iterable[Command] = ()) -> list[bool]:
        """Ack claims in one round trip; each result says whether the caller still owned it.

        `also` adds plain commands (events, counters: argv tuples) to the same round trip.
        """
        pipe = Batch(self.client)
        by_queue = self._ack_calls(pipe, claims, notify=notify)
        for command in also:
            pipe.command(command)
        owned = [False] * len(claims)
        replies = pipe.execute(strict=False)
        self.refused(pipe.entries[len(by_queue) :], replies[len(by_queue) :])
        for indexes, flags in zip(by_queue.values(), replies[: len(by_queue)], strict=True):
            for index, flag in zip(indexes, flags, strict=True):
                owned[index] = bool(flag)
        return owned

    def _ack_calls(self, pipe: Batch, claims: list[Claim], *, notify: bool) -> dict[str, list[int]]:
        """Add the ack script calls of these claims to a pipeline, one per queue; return each queue's claim indexes."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, claim in enumerate(claims):
            by_queue[claim.queue].append(index)
        for queue, indexes in by_queue.items():
            argv: list[Any] = [len(indexes)]
            for index in indexes:
                claim = claims[index]
                channel = self.done_channel(claim.id) if notify and not claim.defect else ""
                argv += [claim.wire_id, claim.token, channel]
            pipe.script(self.scripts.ack, self._keys(queue, "inflight", "messages", "owners", "deliveries"), argv)
        return by_queue

    @converted
    def release(self, claim: Claim, *, priority: int, delay_ms: int = 0, forgive: bool = False) -> bool:
        keys = self._keys(claim.queue, "inflight", "ready", "scheduled", "owners", "deliveries", "seq")
        args: list[bytes | str | int] = [claim.wire_id, claim.token, delay_ms, priority, "1" if forgive else "0"]
        pipe = Batch(self.client)
        pipe.script(self.scripts.release, keys, args)
        for command in self.wake_commands(claim.queue, 1 if delay_ms <= 0 else 0):
            pipe.command(command)
        return bool(pipe.execute()[0])

    @converted
    def extend(self, claims: Iterable[Claim], lease_ms: int) -> list[str]:
        """Extend the leases of claims still owned; return the ids whose lease was lost."""
        by_queue: dict[str, list[bytes | str]] = defaultdict(list)
        ids: dict[bytes, str] = {}
        for claim in claims:
            by_queue[claim.queue] += [claim.wire_id, claim.token]
            ids[claim.wire_id] = claim.id
        if not by_queue:
            return []
        pipe = Batch(self.client)
        for queue, argv in by_queue.items():
            pipe.script(self.scripts.extend, self._keys(queue, "inflight", "owners"), [lease_ms, *argv])
        return [ids.get(raw) or decode.task_id(raw)[0] for lost in pipe.execute() for raw in lost]

    @converted
    def reap(self, queues: Iterable[str], limit: int = 500) -> list[str]:
        """Return expired reservations of these queues to their ready sets; return their ids."""
        pipe = Batch(self.client)
        queues = list(queues)
        for queue in queues:
            keys = self._keys(queue, "inflight", "ready", "messages", "owners", "seq")
            pipe.script(self.scripts.reap, keys, [limit])
        returned, wake = [], Batch(self.client)
        for queue, (moved, orphans) in zip(queues, pipe.execute(), strict=True):
            returned += [decode.task_id(raw)[0] for raw in moved]
            for raw in orphans:
                decode.skipped(
                    self.queue_key(queue, "inflight"), raw, "a lapsed reservation without a message; dropped"
                )
            for command in self.wake_commands(queue, len(moved)):
                wake.command(command)
        if wake.entries:
            wake.execute()
        return returned

    # Taking ids out ---------------------------------------------------------------------------

    @converted
    def forget(self, task_id: str, queue: str) -> None:
        """Take a waiting (queued or scheduled) id out of Redis, and wake its readers."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.queue_key(queue, "ready"), task_id)
        pipe.zrem(self.queue_key(queue, "scheduled"), task_id)
        pipe.hdel(self.queue_key(queue, "messages"), task_id)
        pipe.hdel(self.queue_key(queue, "deliveries"), task_id)
        pipe.execute()
        # Apart: a cluster pipeline refuses PUBLISH (it has no key to route by); any node serves it.
        self.client.publish(self.done_channel(task_id), "done")

    @converted
    def forget_message(self, task_id: str, queue: str) -> None:
        """Drop an id's delivery count and stored envelope, so that its next publish starts afresh."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.queue_key(queue, "deliveries"), task_id)
        pipe.hdel(self.queue_key(queue, "messages"), task_id)
        pipe.execute()


def _claim(entry: list[Any], queue: str) -> Claim:
    """Read one reservation of the claim script: {id, envelope, deliveries, token}."""
    raw, envelope, deliveries, token = entry
    task_id, defect = decode.task_id(raw)
    return Claim(
        id=task_id,
        envelope=envelope,
        deliveries=int(deliveries),
        token=token.decode(),
        queue=queue,
        raw_id=raw if defect else None,
        defect=defect,
    )
