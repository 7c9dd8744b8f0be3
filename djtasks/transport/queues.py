"""The queues: publish, claim, ack, release, extend and reap messages; what a queue holds."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from djtasks.core.message import Message
from djtasks.transport import decode
from djtasks.transport.connection import Batch, Command, Connection, converted

PROMOTE_LIMIT = 100
# Publishes sent without waiting whose replies are not read yet: past this, the oldest is awaited.
UNREAD_LIMIT = 100


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


class _Sender:
    """A connection of one thread for publishes sent without waiting, and what awaits a reply."""

    def __init__(self, pool: redis.ConnectionPool):
        self.pool = pool
        self.connection = pool.make_connection()
        self.unread: deque[tuple[list[tuple[Message, int]], int]] = deque()

    def reset(self) -> None:
        """Drop the connection and the unread replies: the outbox sweep covers those messages."""
        self.connection.disconnect()
        self.connection = self.pool.make_connection()
        self.unread.clear()


class Queues(Connection):
    # Publishing -------------------------------------------------------------------------------

    @converted
    def publish(self, messages: Iterable[tuple[Message, int]]) -> int:
        """Publish (message, due_ms) pairs in one round trip; ids Redis already knows are skipped."""
        calls = self._publish_calls(messages)
        if not calls:
            return 0
        pipe = Batch(self.client)
        for queue, keys, argv in calls:
            pipe.script(self.scripts.publish, keys, argv)
            pipe.command(("SADD", self.key("queues"), queue))
        return sum(pipe.execute()[::2])

    def _publish_calls(self, messages: Iterable[tuple[Message, int]]) -> list[tuple[str, list[str], list[Any]]]:
        """The publish script's (queue, keys, argv) for each queue the messages go to."""
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for message, due_ms in messages:
            by_queue[message.queue] += [message.id, message.encode(), str(message.priority), str(due_ms)]
        calls = []
        for queue, argv in by_queue.items():
            ready, scheduled, _, wake = self.queue_keys(queue)
            calls.append((queue, [self.key("m"), ready, scheduled, wake, self.key("seq")], [len(argv) // 4, *argv]))
        return calls

    def _publish_commands(self, messages: Iterable[tuple[Message, int]]) -> list[Command]:
        """The same as publish() sends, as raw commands (EVALSHA by hash) for publish_nowait."""
        commands: list[Command] = []
        for queue, keys, argv in self._publish_calls(messages):
            commands.append(("EVALSHA", self.scripts.publish.sha, len(keys), *keys, *argv))
            commands.append(("SADD", self.key("queues"), queue))
        return commands

    @converted
    def publish_nowait(self, messages: list[tuple[Message, int]]) -> None:
        """Send a publish and return without waiting for Redis's reply (later calls read it).

        For callers enqueueing one row per transaction, the reply's round trip was half the
        cost. The messages are kept until their reply is read: an error reply (NOSCRIPT after
        a Redis restart) sends them again the waiting way; a lost connection raises here or on
        a later call, and the rows' outbox sweep publishes whatever did not arrive (publishing
        is idempotent). flush_publishes() waits for every reply.
        """
        if not messages:
            return
        sender = self._sender()
        try:
            self._read_replies(sender, wait=len(sender.unread) >= UNREAD_LIMIT)
            commands = self._publish_commands(messages)
            sender.connection.send_packed_command(sender.connection.pack_commands(commands), check_health=False)
        except (redis.ConnectionError, redis.TimeoutError):
            sender.reset()
            raise
        sender.unread.append((messages, len(commands)))

    @converted
    def flush_publishes(self) -> None:
        """Wait for the replies of this thread's publishes sent without waiting."""
        sender = self._sender()
        try:
            while sender.unread:
                self._read_replies(sender, wait=True)
        except (redis.ConnectionError, redis.TimeoutError):
            sender.reset()
            raise

    def _sender(self) -> _Sender:
        sender: _Sender | None = getattr(self.local, "sender", None)
        if sender is None:
            sender = self.local.sender = _Sender(self.client.connection_pool)
        return sender

    def _read_replies(self, sender: _Sender, *, wait: bool) -> None:
        """Read the replies that have arrived (and, if wait, the oldest one's even if not yet)."""
        while sender.unread and (wait or sender.connection.can_read(timeout=0)):
            wait = False
            messages, count = sender.unread.popleft()
            refused = False
            for _ in range(count):
                try:
                    sender.connection.read_response()
                except redis.ResponseError:
                    refused = True
            if refused:
                self.publish(messages)

    # Consuming --------------------------------------------------------------------------------

    @converted
    def claim(
        self, queues: list[str], token_prefix: str, lease_ms: int, *, limit: int = 1, deep: int = 0
    ) -> list[Claim]:
        """Reserve up to `limit` ids (more than one only while the queue stays deeper than `deep`)."""
        keys = [self.key("m"), self.key("o"), self.key("d"), self.key("seq")]
        for queue in queues:
            ready, scheduled, inflight, _ = self.queue_keys(queue)
            keys += [ready, scheduled, inflight, self.paused_key(queue)]
        taken, orphans, recounted = self.scripts.claim(
            keys=keys, args=[lease_ms, token_prefix, PROMOTE_LIMIT, limit, deep]
        )
        for i in range(0, len(orphans), 2):
            reason = "no message is stored for this id (acked already, or written by hand); dropped"
            decode.skipped(keys[int(orphans[i]) - 1], orphans[i + 1], reason)
        for raw in recounted:
            decode.skipped(self.key("d"), raw, "its delivery count was not an integer; counted afresh from 1")
        return [_claim(taken[i : i + 5], queues) for i in range(0, len(taken), 5)]

    def claim_one(self, queues: list[str], token_prefix: str, lease_ms: int) -> Claim | None:
        claims = self.claim(queues, token_prefix, lease_ms)
        return claims[0] if claims else None

    @converted
    def wait_for_work(self, queues: list[str], timeout: float) -> bool:
        """Block until a wake token arrives on one of the queues, or the timeout passes."""
        wake_keys = [self.queue_keys(q)[3] for q in queues]
        return self.client.blpop(wake_keys, timeout=timeout) is not None

    @converted
    def ack(self, claim: Claim, *, notify: bool = True) -> bool:
        return self.ack_many([claim], notify=notify)[0]

    @converted
    def ack_many(self, claims: list[Claim], *, notify: bool = True, also: Iterable[Command] = ()) -> list[bool]:
        """Ack claims in one round trip; each result says whether the caller still owned it.

        `also` adds plain commands (events, counters: argv tuples) to the same round trip.
        """
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, claim in enumerate(claims):
            by_queue[claim.queue].append(index)
        pipe = Batch(self.client)
        for queue, indexes in by_queue.items():
            keys = [self.queue_keys(queue)[2], self.key("m"), self.key("o"), self.key("d")]
            argv: list[Any] = [len(indexes)]
            for index in indexes:
                claim = claims[index]
                channel = self.done_channel(claim.id) if notify and not claim.defect else ""
                argv += [claim.wire_id, claim.token, channel]
            pipe.script(self.scripts.ack, keys, argv)
        for command in also:
            pipe.command(command)
        owned = [False] * len(claims)
        replies = pipe.execute(strict=False)
        self.refused(pipe.entries[len(by_queue) :], replies[len(by_queue) :])
        for indexes, flags in zip(by_queue.values(), replies[: len(by_queue)], strict=True):
            for index, flag in zip(indexes, flags, strict=True):
                owned[index] = bool(flag)
        return owned

    @converted
    def release(self, claim: Claim, *, priority: int, delay_ms: int = 0, forgive: bool = False) -> bool:
        ready, scheduled, inflight, wake = self.queue_keys(claim.queue)
        keys = [inflight, ready, scheduled, self.key("o"), self.key("d"), self.key("seq"), wake]
        args: list[bytes | str | int] = [claim.wire_id, claim.token, delay_ms, priority, "1" if forgive else "0"]
        return bool(self.scripts.release(keys=keys, args=args))

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
            pipe.script(self.scripts.extend, [self.queue_keys(queue)[2], self.key("o")], [lease_ms, *argv])
        return [ids.get(raw) or decode.task_id(raw)[0] for lost in pipe.execute() for raw in lost]

    @converted
    def reap(self, queues: Iterable[str], limit: int = 500) -> list[str]:
        """Return expired reservations of these queues to their ready sets; return their ids."""
        pipe = Batch(self.client)
        inflights = []
        for queue in queues:
            ready, _, inflight, wake = self.queue_keys(queue)
            keys = [inflight, ready, self.key("m"), self.key("o"), self.key("seq"), wake]
            pipe.script(self.scripts.reap, keys, [limit])
            inflights.append(inflight)
        returned = []
        for inflight, (moved, orphans) in zip(inflights, pipe.execute(), strict=True):
            returned += [decode.task_id(raw)[0] for raw in moved]
            for raw in orphans:
                decode.skipped(inflight, raw, "a lapsed reservation without a message; dropped")
        return returned

    # Taking ids out ---------------------------------------------------------------------------

    @converted
    def forget(self, task_id: str, queue: str) -> None:
        """Take a waiting (queued or scheduled) id out of Redis, and wake its readers."""
        ready, scheduled, _, _ = self.queue_keys(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(ready, task_id)
        pipe.zrem(scheduled, task_id)
        pipe.hdel(self.key("m"), task_id)
        pipe.hdel(self.key("d"), task_id)
        pipe.publish(self.done_channel(task_id), "done")
        pipe.execute()

    @converted
    def forget_message(self, task_id: str) -> None:
        """Drop an id's delivery count and stored envelope, so that its next publish starts afresh."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.key("d"), task_id)
        pipe.hdel(self.key("m"), task_id)
        pipe.execute()


def _claim(entry: list[Any], queues: list[str]) -> Claim:
    """Read one reservation of the claim script: {id, envelope, deliveries, token, queue index}."""
    raw, envelope, deliveries, token, index = entry
    task_id, defect = decode.task_id(raw)
    return Claim(
        id=task_id,
        envelope=envelope,
        deliveries=int(deliveries),
        token=token.decode(),
        queue=queues[int(index)],
        raw_id=raw if defect else None,
        defect=defect,
    )
