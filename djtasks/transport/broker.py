"""The Redis transport: the only module that imports redis. Redis errors become BrokerUnavailable here."""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from importlib import resources
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from djtasks.core.conf import Settings, get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.message import Message

PROMOTE_LIMIT = 100
# A plain Redis command for a pipeline: (method name, positional args, keyword options).
Command = tuple[str, tuple[Any, ...], dict[str, Any]]
WAKE_TOKEN_LIMIT = 64
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


def _converted[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    @wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"Redis: {exc.__class__.__name__}: {exc}") from exc

    return wrapper


class _Batch:
    """A pipeline of script calls by hash, without redis-py's SCRIPT EXISTS round trip.

    redis-py checks every registered script with SCRIPT EXISTS before executing a pipeline
    that uses one: a second round trip on each publish, ack and extend. Here scripts are
    called with EVALSHA; only if Redis answers NOSCRIPT (it restarted, or SCRIPT FLUSH) are
    they loaded and the pipeline sent again. Every script is idempotent for a repeat.
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        self.calls: list[tuple[Any, list[str], list[Any]]] = []
        self.commands: list[Command] = []

    def script(self, script: Any, keys: list[str], args: list[Any]) -> None:
        self.calls.append((script, keys, args))
        self.commands.append(("script", (len(self.calls) - 1,), {}))

    def command(self, name: str, *args: Any, **options: Any) -> None:
        self.commands.append((name, args, options))

    def execute(self) -> list[Any]:
        replies = self._send(list(range(len(self.commands))))
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
        if missing:
            # Resend only the script calls Redis refused: plain commands (XADD, HINCRBY) already ran.
            for script, _, _ in self.calls:
                script.sha = self.client.script_load(script.script)
            for index, reply in zip(missing, self._send(missing), strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _send(self, indexes: list[int]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for index in indexes:
            name, args, options = self.commands[index]
            if name == "script":
                script, keys, argv = self.calls[args[0]]
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *argv)
            else:
                getattr(pipe, name)(*args, **options)
        return pipe.execute(raise_on_error=False)


def _script_source(name: str) -> str:
    return resources.files("djtasks.transport").joinpath("lua", f"{name}.lua").read_text()


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


class Broker:
    def __init__(self, config: Settings):
        self._local = threading.local()
        self.prefix = "{" + config.PREFIX + "}"
        self.client = redis.Redis.from_url(
            config.REDIS_URL,
            socket_timeout=config.SOCKET_TIMEOUT,
            socket_connect_timeout=config.SOCKET_CONNECT_TIMEOUT,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        self._publish = self.client.register_script(_script_source("publish"))
        self._claim = self.client.register_script(_script_source("claim"))
        self._ack = self.client.register_script(_script_source("ack"))
        self._extend = self.client.register_script(_script_source("extend"))
        self._release = self.client.register_script(_script_source("release"))
        self._reap = self.client.register_script(_script_source("reap"))
        self._ratelimit = self.client.register_script(_script_source("ratelimit"))
        self._oldest = self.client.register_script(_script_source("oldest"))

    # Key names: one hash tag, so a Redis Cluster serves every key from one slot. --------------

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def queue_keys(self, queue: str) -> tuple[str, str, str, str]:
        """Return (ready, scheduled, inflight, wake) for a queue."""
        return (self.key("q", queue), self.key("s", queue), self.key("i", queue), self.key("w", queue))

    def done_channel(self, task_id: str) -> str:
        return self.key("done", task_id)

    # Publishing -------------------------------------------------------------------------------

    @_converted
    def publish(self, messages: Iterable[tuple[Message, int]]) -> int:
        """Publish (message, due_ms) pairs in one round trip; ids Redis already knows are skipped."""
        calls = self._publish_calls(messages)
        if not calls:
            return 0
        pipe = _Batch(self.client)
        for queue, keys, argv in calls:
            pipe.script(self._publish, keys, argv)
            pipe.command("sadd", self.key("queues"), queue)
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

    def _publish_commands(self, messages: Iterable[tuple[Message, int]]) -> list[tuple[Any, ...]]:
        """The same as publish() sends, as raw commands (EVALSHA by hash) for publish_nowait."""
        commands: list[tuple[Any, ...]] = []
        for queue, keys, argv in self._publish_calls(messages):
            commands.append(("EVALSHA", self._publish.sha, len(keys), *keys, *argv))
            commands.append(("SADD", self.key("queues"), queue))
        return commands

    @_converted
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

    @_converted
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
        sender: _Sender | None = getattr(self._local, "sender", None)
        if sender is None:
            sender = self._local.sender = _Sender(self.client.connection_pool)
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

    @_converted
    def known(self, ids: list[str]) -> list[bool]:
        """Tell, for each id, whether Redis holds its message (queued, scheduled or reserved)."""
        if not ids:
            return []
        return [value is not None for value in self.client.hmget(self.key("m"), ids)]

    # Consuming --------------------------------------------------------------------------------

    @_converted
    def claim(
        self, queues: list[str], token_prefix: str, lease_ms: int, *, limit: int = 1, deep: int = 0
    ) -> list[Claim]:
        """Reserve up to `limit` ids (more than one only while the queue stays deeper than `deep`)."""
        keys = [self.key("m"), self.key("o"), self.key("d"), self.key("seq")]
        for queue in queues:
            ready, scheduled, inflight, _ = self.queue_keys(queue)
            keys += [ready, scheduled, inflight]
        reply = self._claim(keys=keys, args=[lease_ms, token_prefix, PROMOTE_LIMIT, limit, deep])
        return [
            Claim(
                id=reply[i].decode(),
                envelope=reply[i + 1],
                deliveries=int(reply[i + 2]),
                token=reply[i + 3].decode(),
                queue=queues[int(reply[i + 4])],
            )
            for i in range(0, len(reply), 5)
        ]

    def claim_one(self, queues: list[str], token_prefix: str, lease_ms: int) -> Claim | None:
        claims = self.claim(queues, token_prefix, lease_ms)
        return claims[0] if claims else None

    @_converted
    def wait_for_work(self, queues: list[str], timeout: float) -> bool:
        """Block until a wake token arrives on one of the queues, or the timeout passes."""
        wake_keys = [self.queue_keys(q)[3] for q in queues]
        return self.client.blpop(wake_keys, timeout=timeout) is not None

    @_converted
    def ack(self, claim: Claim, *, notify: bool = True) -> bool:
        return self.ack_many([claim], notify=notify)[0]

    @_converted
    def ack_many(self, claims: list[Claim], *, notify: bool = True, also: Iterable[Command] = ()) -> list[bool]:
        """Ack claims in one round trip; each result says whether the caller still owned it.

        `also` adds plain commands (events, counters: name, args, options) to the same round trip.
        """
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, claim in enumerate(claims):
            by_queue[claim.queue].append(index)
        pipe = _Batch(self.client)
        for queue, indexes in by_queue.items():
            keys = [self.queue_keys(queue)[2], self.key("m"), self.key("o"), self.key("d")]
            argv: list[Any] = [len(indexes)]
            for index in indexes:
                claim = claims[index]
                argv += [claim.id, claim.token, self.done_channel(claim.id) if notify else ""]
            pipe.script(self._ack, keys, argv)
        for name, args, options in also:
            pipe.command(name, *args, **options)
        owned = [False] * len(claims)
        for indexes, flags in zip(by_queue.values(), pipe.execute()[: len(by_queue)], strict=True):
            for index, flag in zip(indexes, flags, strict=True):
                owned[index] = bool(flag)
        return owned

    @_converted
    def send_commands(self, commands: Iterable[Command]) -> None:
        """Send plain commands (name, args, options) in one round trip."""
        pipe = _Batch(self.client)
        for name, args, options in commands:
            pipe.command(name, *args, **options)
        if pipe.commands:
            pipe.execute()

    @_converted
    def call[R](self, operation: Callable[[redis.Redis], R]) -> R:
        """Run an operation of a sibling module (events, metrics, overrides) with errors converted."""
        return operation(self.client)

    @_converted
    def release(self, claim: Claim, *, priority: int, delay_ms: int = 0, forgive: bool = False) -> bool:
        ready, scheduled, inflight, wake = self.queue_keys(claim.queue)
        keys = [inflight, ready, scheduled, self.key("o"), self.key("d"), self.key("seq"), wake]
        args: list[str | int] = [claim.id, claim.token, delay_ms, priority, "1" if forgive else "0"]
        return bool(self._release(keys=keys, args=args))

    @_converted
    def extend(self, claims: Iterable[Claim], lease_ms: int) -> list[str]:
        """Extend the leases of claims still owned; return the ids whose lease was lost."""
        by_queue: dict[str, list[str]] = defaultdict(list)
        for claim in claims:
            by_queue[claim.queue] += [claim.id, claim.token]
        if not by_queue:
            return []
        pipe = _Batch(self.client)
        for queue, argv in by_queue.items():
            pipe.script(self._extend, [self.queue_keys(queue)[2], self.key("o")], [lease_ms, *argv])
        return [task_id.decode() for lost in pipe.execute() for task_id in lost]

    @_converted
    def reap(self, queues: Iterable[str], limit: int = 500) -> list[str]:
        """Return expired reservations of these queues to their ready sets; return their ids."""
        pipe = _Batch(self.client)
        for queue in queues:
            ready, _, inflight, wake = self.queue_keys(queue)
            keys = [inflight, ready, self.key("m"), self.key("o"), self.key("seq"), wake]
            pipe.script(self._reap, keys, [limit])
        return [task_id.decode() for moved in pipe.execute() for task_id in moved]

    # Rate limits ------------------------------------------------------------------------------

    @_converted
    def take_rate_slot(self, task_name: str, interval_ms: float) -> int:
        keys = [self.key("rl", task_name), self.key("rl-overrides")]
        return int(self._ratelimit(keys=keys, args=[task_name, interval_ms]))

    @_converted
    def rate_overrides(self) -> set[str]:
        return {name.decode() for name in self.client.hkeys(self.key("rl-overrides"))}  # type: ignore[union-attr]

    @_converted
    def set_rate_override(self, task_name: str, interval_ms: float) -> None:
        self.client.hset(self.key("rl-overrides"), task_name, interval_ms)

    @_converted
    def clear_rate_override(self, task_name: str) -> None:
        self.client.hdel(self.key("rl-overrides"), task_name)

    # Coordination and observation ---------------------------------------------------------------

    @_converted
    def acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take a short-lived lock (or keep it, if this owner holds it)."""
        key = self.key("lock", name)
        if self.client.set(key, owner, nx=True, px=ttl_ms):
            return True
        if self.client.get(key) == owner.encode():
            self.client.pexpire(key, ttl_ms)
            return True
        return False

    @_converted
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

    @_converted
    def send_control(self, worker_id: str, command: dict[str, object]) -> None:
        """Queue a command for one worker; it sits there until that worker's parent reads it."""
        key = self.key("ctl", worker_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, json.dumps(command))
        pipe.expire(key, 86400)
        pipe.execute()

    @_converted
    def send_controls(self, worker_ids: list[str], command: dict[str, object], ttl_s: int) -> None:
        """Queue one command for several workers in one round trip; unread commands expire after ttl_s."""
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            key = self.key("ctl", worker_id)
            pipe.rpush(key, json.dumps(command))
            pipe.expire(key, ttl_s)
        pipe.execute()

    @_converted
    def reply(self, request_id: str, payload: dict[str, object], ttl_s: int = 60) -> None:
        """Push a worker's reply to a control request onto the request's reply list."""
        key = self.key("reply", request_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, json.dumps(payload, default=str))
        pipe.expire(key, ttl_s)
        pipe.execute()

    @_converted
    def wait_reply(self, request_id: str, timeout: float) -> dict[str, object] | None:
        """Block until a reply to the request arrives (its decoded JSON) or the timeout passes (None)."""
        got = self.client.blpop([self.key("reply", request_id)], timeout=max(timeout, 0.01))
        if got is None:
            return None
        reply = json.loads(got[1])  # type: ignore[index]
        return reply if isinstance(reply, dict) else None

    @_converted
    def forget_replies(self, request_id: str) -> None:
        self.client.delete(self.key("reply", request_id))

    @_converted
    def scheduled(self, queue: str, limit: int = 100) -> list[tuple[str, float]]:
        """Return (id, due unix time) of the queue's delayed tasks, soonest first."""
        rows: list[tuple[bytes, float]] = self.client.zrange(  # type: ignore[assignment]
            self.queue_keys(queue)[1], 0, limit - 1, withscores=True
        )
        return [(task_id.decode(), score / 1000.0) for task_id, score in rows]

    @_converted
    def pop_control(self, worker_id: str) -> list[dict[str, object]]:
        raw: list[bytes] = self.client.lpop(self.key("ctl", worker_id), 100) or []  # type: ignore[assignment]
        commands = []
        for item in raw:
            try:
                command = json.loads(item)
            except ValueError:
                continue
            if isinstance(command, dict):
                commands.append(command)
        return commands

    @_converted
    def ensure_epoch(self, token: str) -> bool:
        """Create the epoch marker if missing; True means Redis lost its data (or is new)."""
        return bool(self.client.set(self.key("epoch"), token, nx=True))

    @_converted
    def heartbeat(self, worker_id: str, info: str, ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("worker", worker_id), info, ex=ttl_s)
        pipe.sadd(self.key("workers"), worker_id)
        pipe.execute()

    @_converted
    def forget_worker(self, worker_id: str) -> None:
        self.client.delete(self.key("worker", worker_id))
        self.client.srem(self.key("workers"), worker_id)

    @_converted
    def workers(self) -> dict[str, bytes]:
        ids = sorted(w.decode() for w in self.client.smembers(self.key("workers")))  # type: ignore[union-attr]
        infos: list[bytes | None] = self.client.mget([self.key("worker", w) for w in ids]) if ids else []  # type: ignore[assignment]
        alive = {w: info for w, info in zip(ids, infos, strict=True) if info is not None}
        gone = set(ids) - set(alive)
        if gone:
            self.client.srem(self.key("workers"), *gone)
        return alive

    @_converted
    def queue_stats(self) -> dict[str, dict[str, int]]:
        queues = sorted(q.decode() for q in self.client.smembers(self.key("queues")))  # type: ignore[union-attr]
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            ready, scheduled, inflight, _ = self.queue_keys(queue)
            pipe.zcard(ready)
            pipe.zcard(scheduled)
            pipe.zcard(inflight)
        counts = pipe.execute()
        return {
            q: {"ready": counts[i * 3], "scheduled": counts[i * 3 + 1], "reserved": counts[i * 3 + 2]}
            for i, q in enumerate(queues)
        }

    @_converted
    def oldest_ready(self, queue: str) -> str | None:
        """Return the id that has waited longest in a queue's ready set, or None when it is empty."""
        found = self._oldest(keys=[self.queue_keys(queue)[0]])
        return found.decode() if found else None

    @contextmanager
    def subscription(self, task_ids: list[str]) -> Iterator[Callable[[float], bool]]:
        """Subscribe to the done channels of tasks; yield wait(timeout) -> True when one finished."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            try:
                pubsub.subscribe(*[self.done_channel(t) for t in task_ids])
            except redis.RedisError as exc:
                raise BrokerUnavailable(str(exc)) from exc

            def wait(timeout: float) -> bool:
                try:
                    return pubsub.get_message(timeout=timeout) is not None
                except redis.RedisError as exc:
                    raise BrokerUnavailable(str(exc)) from exc

            yield wait
        finally:
            try:
                pubsub.close()
            except redis.RedisError:
                pass

    @_converted
    def ping(self) -> bool:
        return bool(self.client.ping())

    def close(self) -> None:
        self.client.close()


_brokers: dict[tuple[int, Settings], Broker] = {}


def get_broker() -> Broker:
    """Return this process's broker for the current settings (a forked child builds its own)."""
    config = get_settings()
    key = (os.getpid(), config)
    broker = _brokers.get(key)
    if broker is None:
        _brokers.clear()
        broker = _brokers[key] = Broker(config)
    return broker


def close_broker() -> None:
    for broker in _brokers.values():
        broker.close()
    _brokers.clear()
