"""The Redis client, its error conversion, the Lua scripts and the pipeline that calls them by hash."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, wraps
from importlib import resources
from typing import Any, cast

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.transport.clients import Client, make_client
from djtasks.transport.decode import skipped
from djtasks.transport.keys import Keys

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


def _text(value: object) -> str | bytes:
    return value if isinstance(value, str | bytes) else str(value)


@cache  # read once per process (the worker's parent, before it forks): not again by every client built
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
    adopt: Script
    clock: Script

    @classmethod
    def register(cls, client: Client) -> Scripts:
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
            adopt=load("adopt"),
            clock=load("clock"),
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

    def __init__(self, client: Client):
        self.client = client
        self.entries: list[ScriptCall | Command] = []

    def script(self, script: Script, keys: list[str], args: list[Any]) -> None:
        self.entries.append(ScriptCall(script, keys, args))

    def command(self, command: Command) -> None:
        self.entries.append(command)

    @staticmethod
    def is_script(entry: ScriptCall | Command) -> bool:
        return isinstance(entry, ScriptCall)

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
        argvs: list[Command] = []
        for index in indexes:
            entry = self.entries[index]
            if isinstance(entry, ScriptCall):
                argvs.append(("EVALSHA", entry.script.sha, len(entry.keys), *entry.keys, *entry.args))
            else:
                argvs.append(entry)
        if isinstance(self.client, RedisCluster):  # keys on several nodes: redis-py sends each to its own
            pipe = self.client.pipeline(transaction=False)
            for argv in argvs:
                pipe.execute_command(*argv)
            return pipe.execute(raise_on_error=False)
        return send_raw(self.client, argvs)


# hiredis' stub types the argument as a tuple of one item; it takes a tuple of any length.
_pack_command = cast(Callable[[Command], bytes], hiredis.pack_command)


def pack(argvs: list[Command], connection: Any) -> bytes:
    """Commands in Redis' protocol, packed by hiredis straight: 10 us for a claim's 11 commands, where
    redis-py's pack_commands (the same hiredis call, after its own per-argument conversions) takes 44.

    An argument hiredis refuses (a bytearray, None, a bool) goes to redis-py's packer instead, which
    converts what it can and raises its DataError for the rest: the bytes sent are redis-py's. Command
    names are djtasks' own and one word each (redis-py would split "CLIENT LIST" in two; this does not).
    """
    try:
        return b"".join([_pack_command(argv) for argv in argvs])
    except TypeError:
        return b"".join(connection.pack_commands(argvs))


def send_raw(client: redis.Redis, argvs: list[Command]) -> list[Any]:
    """Send commands in one round trip on a pooled connection; return their replies as a pipeline would.

    An error reply is returned as its exception, and the client's response callbacks are applied,
    as redis-py's pipeline.execute(raise_on_error=False) does. Without its costs: a pipeline of 11
    commands (an ack, the counters, an event, a claim) took 168-191 us of CPU through redis-py 8.1's
    pipeline and 66-76 us here (2 GHz Xeon, measured), one such pipeline in each round trip of a
    child. The connection is dropped, not pooled, if anything interrupts the exchange: a reply left
    unread would answer the next command.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    callbacks = client.response_callbacks
    replies: list[Any] = []
    try:
        connection.send_packed_command([pack(argvs, connection)])
        for argv in argvs:
            try:
                reply = connection.read_response()
            except redis.ResponseError as exc:
                replies.append(exc)
                continue
            callback = callbacks.get(argv[0])
            replies.append(callback(reply) if callback is not None else reply)
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    return replies


class Connection(Keys):
    """What every part of the broker shares: the client, the scripts and the key names (keys.Keys)."""

    def __init__(self, config: Settings):
        super().__init__(config.PREFIX)
        self.config = config
        self._client: Client | None = None
        self._scripts: Scripts | None = None
        self._building = threading.Lock()
        # Per-thread state: the connection of publishes sent without waiting.
        self.local = threading.local()

    @property
    def client(self) -> Client:
        """The Redis client, built on first use (finding out whether REDIS_URL names a cluster may need Redis)."""
        if self._client is None:
            with self._building:
                if self._client is None:
                    client = make_client(self.config)
                    self._scripts = Scripts.register(client)
                    self._client = client
        return self._client

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            self.client  # noqa: B018 (builds the client and registers the scripts)
        assert self._scripts is not None
        return self._scripts

    @property
    def clustered(self) -> bool:
        """True when Redis is a cluster: keys live on several masters (see keys.py)."""
        return isinstance(self.client, RedisCluster)

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
        if self._client is not None:
            self._client.close()
