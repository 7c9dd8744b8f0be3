"""Publishing: task ids into their queues' keys, waiting for Redis's reply or not."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from djtasks.core.message import Message
from djtasks.transport.connection import Batch, Command, Connection, converted, pack

# Publishes sent without waiting whose replies are not read yet: past this, the oldest is awaited.
UNREAD_LIMIT = 100
WAKE_TOKENS = 64  # a wake-up list holds at most this many tokens
# (queue, priority, ids): messages of one queue and priority, due now, in the order given (a bulk() block's).
Run = tuple[str, int, list[str]]


class _Sender:
    """A connection of one thread for publishes sent without waiting, and what awaits a reply.

    Each time the connection is made (first, and again after Redis restarted) it loads the publish
    script before anything is sent: a publish sent without waiting is then never refused NOSCRIPT
    by a Redis that lacks the script, a refusal read only at the thread's next publish (which
    would replay it then, and leave the task to the outbox sweep meanwhile).
    """

    def __init__(self, pool: redis.ConnectionPool, script: str):
        self.pool = pool
        self.script = script
        self.connection = self._connect()
        self.unread: deque[tuple[list[tuple[Message, int]], Sequence[Run], int]] = deque()

    def _connect(self) -> Any:
        connection = self.pool.make_connection()
        connection.register_connect_callback(self._load)
        return connection

    def _load(self, connection: Any) -> None:
        connection.send_command("SCRIPT", "LOAD", self.script)
        connection.read_response()

    def reset(self) -> None:
        """Drop the connection and the unread replies: the outbox sweep covers those messages."""
        self.connection.disconnect()
        self.connection = self._connect()
        self.unread.clear()


class Publishing(Connection):
    def wake_commands(self, queue: str, tokens: int) -> list[Command]:
        """The commands that wake up to `tokens` idle consumers of a queue (none for 0)."""
        if tokens <= 0:
            return []
        key = self.wake_key(queue)
        return [("LPUSH", key, *["1"] * min(tokens, WAKE_TOKENS)), ("LTRIM", key, 0, WAKE_TOKENS - 1)]

    @converted
    def publish(self, messages: Iterable[tuple[Message, int]], runs: Iterable[Run] = ()) -> int:
        """Publish (message, due_ms) pairs, and runs of ids due now, in one round trip; ids Redis knows are skipped."""
        calls = self._publish_calls(messages, runs)
        if not calls:
            return 0
        pipe = Batch(self.client)
        for keys, argv, commands in calls:
            pipe.script(self.scripts.publish, keys, argv)
            for command in commands:
                pipe.command(command)
        replies = pipe.execute()
        return sum(reply for entry, reply in zip(pipe.entries, replies, strict=True) if pipe.is_script(entry))

    def _publish_calls(
        self, messages: Iterable[tuple[Message, int]], runs: Iterable[Run] = ()
    ) -> list[tuple[list[str], list[Any], list[Command]]]:
        """For each queue the messages go to: the publish script's keys and argv, then the commands after it.

        The argv is groups of ids alike (lua/publish.lua): a message joins the group before it
        when its priority and due time are the same, and a run is one group however long.
        """
        by_queue: dict[str, list[Any]] = defaultdict(list)
        heads: dict[str, tuple[int, int, int]] = {}  # per queue: where its last group starts, its priority, due
        now_ms = time.time() * 1000
        ready: dict[str, int] = defaultdict(int)
        for message, due_ms in messages:
            queue, priority = message.queue, message.priority
            argv = by_queue[queue]
            head = heads.get(queue)
            if head is not None and head[1] == priority and head[2] == due_ms:
                argv[head[0]] += 1
                argv.append(message.id)
            else:
                heads[queue] = (len(argv), priority, due_ms)
                argv += [1, message.encode(), priority, due_ms, message.id]
            # Wake consumers for what is due now; the script judges due-ness on Redis' clock, and a
            # consumer that missed a wake-up looks again within a second anyway.
            ready[queue] += due_ms <= now_ms
        for queue, priority, ids in runs:
            if ids:
                by_queue[queue] += [len(ids), Message(ids[0], queue, priority).encode(), priority, 0, *ids]
                ready[queue] += len(ids)
        calls = []
        for queue, argv in by_queue.items():
            keys = [self.queue_key(queue, kind) for kind in ("messages", "ready", "scheduled", "seq")]
            after = [("SADD", self.coordination_key("queues"), queue), *self.wake_commands(queue, ready[queue])]
            calls.append((keys, argv, after))
        return calls

    def _publish_commands(self, messages: Iterable[tuple[Message, int]], runs: Iterable[Run] = ()) -> list[Command]:
        """The same as publish() sends, as raw commands (EVALSHA by hash) for publish_nowait."""
        commands: list[Command] = []
        for keys, argv, after in self._publish_calls(messages, runs):
            commands.append(("EVALSHA", self.scripts.publish.sha, len(keys), *keys, *argv))
            commands += after
        return commands

    @converted
    def publish_nowait(self, messages: list[tuple[Message, int]], runs: Sequence[Run] = ()) -> None:
        """Send a publish (as publish() takes it) and return without waiting for Redis's reply (later calls read it).

        For callers enqueueing one row per transaction, the reply's round trip was half the
        cost. The messages are kept until their reply is read: an error reply (NOSCRIPT after
        a Redis restart) sends them again the waiting way; a lost connection raises here or on
        a later call, and the rows' outbox sweep publishes whatever did not arrive (publishing
        is idempotent). flush_publishes() waits for every reply. On a cluster, whose commands
        go to several nodes, this publishes the waiting way.
        """
        if not messages and not any(ids for _, _, ids in runs):
            return
        if self.clustered:
            self.publish(messages, runs)
            return
        sender = self._sender()
        try:
            self._read_replies(sender, wait=len(sender.unread) >= UNREAD_LIMIT)
            commands = self._publish_commands(messages, runs)
            # connect() first (a no-op once connected): a Sentinel connection finds the primary
            # there, where sending on an unconnected one would try the default address.
            sender.connection.connect()
            sender.connection.send_packed_command([pack(commands, sender.connection)], check_health=False)
        except (redis.ConnectionError, redis.TimeoutError):
            sender.reset()
            raise
        sender.unread.append((messages, runs, len(commands)))

    @converted
    def flush_publishes(self) -> None:
        """Wait for the replies of this thread's publishes sent without waiting."""
        sender: _Sender | None = getattr(self.local, "sender", None)
        if sender is None:
            return
        try:
            while sender.unread:
                self._read_replies(sender, wait=True)
        except (redis.ConnectionError, redis.TimeoutError):
            sender.reset()
            raise

    def _sender(self) -> _Sender:
        sender: _Sender | None = getattr(self.local, "sender", None)
        if sender is None:
            client = self.client
            assert isinstance(client, redis.Redis)
            sender = self.local.sender = _Sender(client.connection_pool, str(self.scripts.publish.script))
        return sender

    def _read_replies(self, sender: _Sender, *, wait: bool) -> None:
        """Read the replies that have arrived (and, if wait, the oldest one's even if not yet)."""
        while sender.unread and (wait or sender.connection.can_read(timeout=0)):
            wait = False
            messages, runs, count = sender.unread.popleft()
            refused = False
            for _ in range(count):
                try:
                    sender.connection.read_response()
                except redis.ResponseError:
                    refused = True
            if refused:
                self.publish(messages, runs)
