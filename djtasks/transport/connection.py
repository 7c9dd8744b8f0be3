"""The Redis client, its error conversion, the Lua scripts and the pipeline that calls them by hash."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from importlib import resources
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.transport.decode import skipped

# A plain Redis command for a pipeline: its argv, as sent (("HINCRBY", key, field, 1), ...).
Command = tuple[str | bytes | int | float, ...]


@contextmanager
def converted_errors() -> Iterator[None]:
    """Turn a Redis error raised inside into BrokerUnavailable: the only place that does."""
    try:
        yield
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis: {exc.__class__.__name__}: {exc}") from exc


def converted[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    """Wrap a broker method so that its Redis errors raise BrokerUnavailable."""

    @wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with converted_errors():
            return method(*args, **kwargs)

    return wrapper


def make_client(config: Settings) -> redis.Redis:
    """Build the client of the settings' REDIS_URL: no retries, so a failure surfaces at once."""
    return redis.Redis.from_url(
        config.REDIS_URL,
        socket_timeout=config.SOCKET_TIMEOUT,
        socket_connect_timeout=config.SOCKET_CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )


def _text(value: object) -> str | bytes:
    return value if isinstance(value, str | bytes) else str(value)


def _source(name: str) -> str:
    """Return a script's source, after the prelude every script shares (lua/_prelude.lua)."""
    folder = resources.files("djtasks.transport").joinpath("lua")
    return folder.joinpath("_prelude.lua").read_text() + folder.joinpath(f"{name}.lua").read_text()


@dataclass(frozen=True, slots=True)
class Scripts:
    """The Lua scripts of lua/, registered on one client (each knows its hash)."""

    publish: Script
    claim: Script
    ack: Script
    extend: Script
    release: Script
    reap: Script
    ratelimit: Script
    oldest: Script

    @classmethod
    def register(cls, client: redis.Redis) -> Scripts:
        def load(name: str) -> Script:
            return client.register_script(_source(name))

        return cls(
            publish=load("publish"),
            claim=load("claim"),
            ack=load("ack"),
            extend=load("extend"),
            release=load("release"),
            reap=load("reap"),
            ratelimit=load("ratelimit"),
            oldest=load("oldest"),
        )


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of a script in a pipeline: sent as EVALSHA with the script's hash."""

    script: Script
    keys: list[str]
    args: list[Any]


class Batch:
    """A pipeline of script calls by hash, without redis-py's SCRIPT EXISTS round trip.

    redis-py checks every registered script with SCRIPT EXISTS before executing a pipeline
    that uses one: a second round trip on each publish, ack and extend. Here scripts are
    called with EVALSHA; only if Redis answers NOSCRIPT (it restarted, or SCRIPT FLUSH) are
    they loaded and the pipeline sent again. Every script is idempotent for a repeat.
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        self.entries: list[ScriptCall | Command] = []

    def script(self, script: Script, keys: list[str], args: list[Any]) -> None:
        self.entries.append(ScriptCall(script, keys, args))

    def command(self, command: Command) -> None:
        self.entries.append(command)

    def execute(self, *, strict: bool = True) -> list[Any]:
        """Send the pipeline; raise the first error reply, or (not strict) only a script's."""
        replies = self._send(list(range(len(self.entries))))
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
        if missing:
            # Resend only the script calls Redis refused: plain commands (XADD, HINCRBY) already ran.
            for entry in self.entries:
                if isinstance(entry, ScriptCall):
                    entry.script.sha = self.client.script_load(entry.script.script)
            for index, reply in zip(missing, self._send(missing), strict=True):
                replies[index] = reply
        for entry, reply in zip(self.entries, replies, strict=True):
            if isinstance(reply, Exception) and (strict or isinstance(entry, ScriptCall)):
                raise reply
        return replies

    def _send(self, indexes: list[int]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for index in indexes:
            entry = self.entries[index]
            if isinstance(entry, ScriptCall):
                pipe.execute_command("EVALSHA", entry.script.sha, len(entry.keys), *entry.keys, *entry.args)
            else:
                pipe.execute_command(*entry)
        return pipe.execute(raise_on_error=False)


class Connection:
    """What every part of the broker shares: the client, the scripts and the key names."""

    def __init__(self, config: Settings):
        self.prefix = "{" + config.PREFIX + "}"
        self.client = make_client(config)
        self.scripts = Scripts.register(self.client)
        # Per-thread state: the connection of publishes sent without waiting.
        self.local = threading.local()

    # Key names: one hash tag, so a Redis Cluster serves every key from one slot. --------------

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def queue_keys(self, queue: str) -> tuple[str, str, str, str]:
        """Return (ready, scheduled, inflight, wake) for a queue."""
        return (self.key("q", queue), self.key("s", queue), self.key("i", queue), self.key("w", queue))

    def paused_key(self, queue: str) -> str:
        """The flag that pauses a queue (transport/fleet.py); the claim script reads it with the queue's keys."""
        return self.key("p", queue)

    def done_channel(self, task_id: str) -> str:
        return self.key("done", task_id)

    @converted
    def send_commands(self, commands: Iterable[Command]) -> None:
        """Send plain commands (argv tuples) in one round trip; see refused() for those Redis refuses."""
        pipe = Batch(self.client)
        for command in commands:
            pipe.command(command)
        if pipe.entries:
            self.refused(pipe.entries, pipe.execute(strict=False))

    def refused(self, entries: list[ScriptCall | Command], replies: list[Any]) -> None:
        """Deal with the plain commands of a pipeline that Redis refused (events, counters).

        A counter field holding what is not a number (written by hand) makes every increment of
        it fail: it restarts from the refused increment. Anything else is logged and dropped.
        """
        repairs: list[Command] = []
        for entry, reply in zip(entries, replies, strict=True):
            if isinstance(entry, ScriptCall) or not isinstance(reply, Exception):
                continue
            key = entry[1] if len(entry) > 1 else entry[0]
            if entry[0] in ("HINCRBY", "HINCRBYFLOAT") and len(entry) == 4:
                repairs.append(("HSET", entry[1], entry[2], entry[3]))
                skipped(str(key), _text(entry[2]), f"held a value that is not a number ({reply}); counted afresh")
            else:
                skipped(str(key), str(entry[0]), f"Redis refused the command ({reply}); not written")
        if repairs:
            pipe = Batch(self.client)
            for command in repairs:
                pipe.command(command)
            for command, reply in zip(repairs, pipe.execute(strict=False), strict=True):
                if isinstance(reply, Exception):
                    skipped(str(command[1]), _text(command[2]), f"could not be reset ({reply})")

    def close(self) -> None:
        self.client.close()
