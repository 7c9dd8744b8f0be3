"""Coordination between processes: locks, the epoch marker, heartbeats, control commands and replies, Redis' clock.

Whatever is read back here is decoded by total functions: an undecodable heartbeat, control
message or reply is logged and skipped (a control message with a request id gets an error
reply), never raised. Ages and deadlines are measured on Redis' clock (TIME, or the TTL left),
so hosts whose clocks disagree still agree on them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from djtasks.core.commands import MAX_MESSAGE_BYTES, Command, Refused, parse
from djtasks.core.names import MAX_QUEUE_NAME
from djtasks.transport import decode
from djtasks.transport.connection import Batch, Connection, converted

logger = logging.getLogger("djtasks")
# A control message found unread this long after its sender stopped waiting expires with its list.
CONTROL_LIST_TTL_S = 60


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a live worker last said of itself, and how long ago (seconds, on Redis' clock; None if unknown)."""

    info: dict[str, Any]
    age_s: float | None


def _json(raw: Any) -> Any:
    """Decode JSON bytes; raise ValueError for anything else (not UTF-8, not JSON, nested too deep)."""
    if not isinstance(raw, bytes | str):
        raise ValueError(f"not bytes but {type(raw).__name__}")
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deep") from None


def _escaped(raw: Any) -> str:
    return repr(raw[:120]) + ("..." if len(raw) > 120 else "") if isinstance(raw, bytes | str) else repr(raw)


class Coordination(Connection):
    # Locks and the epoch ----------------------------------------------------------------------

    @converted
    def acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take a short-lived lock (or keep it, if this owner holds it)."""
        key = self.coordination_key("lock", name)
        if self.client.set(key, owner, nx=True, px=ttl_ms):
            return True
        if self.client.get(key) == owner.encode():
            self.client.pexpire(key, ttl_ms)
            return True
        if self.client.pttl(key) == -1:
            # Every lock djtasks takes expires; one that never would (written by hand, or a
            # restore that dropped expiries) is given a lifetime, so its duty is not stopped forever.
            self.client.pexpire(key, ttl_ms)
        return False

    @converted
    def ensure_epoch(self, token: str, queues: Iterable[str] = ()) -> bool:
        """Create the epoch markers if missing; True means Redis lost data (or is new).

        One marker in the coordination slot, one per queue in that queue's slot (the queues named
        and those in the queues set): on a cluster, one master can lose its data alone.
        """
        names = sorted(set(queues) | self._queue_names())
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.coordination_key("epoch"), token, nx=True)
        for queue in names:
            pipe.set(self.queue_key(queue, "epoch"), token, nx=True)
        return any(pipe.execute())

    def _queue_names(self) -> set[str]:
        raw: Any = self.client.smembers(self.coordination_key("queues"))
        return {name for name in (decode.text(member) for member in raw) if name and len(name) <= MAX_QUEUE_NAME}

    # Redis' clock -----------------------------------------------------------------------------

    @converted
    def redis_time(self) -> float:
        """Return Redis' clock (seconds since the epoch): the one clock every host agrees on.

        On a cluster, the clock of the node holding the coordination keys, so every host reads the same one.
        """
        pipe = Batch(self.client)
        pipe.script(self.scripts.clock, [self.coordination_key("clock")], [])
        seconds, micros = pipe.execute()[0]
        return int(seconds) + int(micros) / 1e6

    # Heartbeats and the workers set -----------------------------------------------------------

    @converted
    def heartbeat(self, worker_id: str, info: Mapping[str, object], ttl_s: int) -> None:
        """Say a worker is alive for ttl_s seconds; its age is later read from the TTL left (heartbeats())."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(
            self.coordination_key("worker", worker_id), json.dumps({**info, "ttl_s": ttl_s}, default=str), ex=ttl_s
        )
        pipe.sadd(self.coordination_key("workers"), worker_id)
        pipe.execute()

    @converted
    def forget_worker(self, worker_id: str) -> None:
        self.client.delete(self.coordination_key("worker", worker_id))
        self.client.srem(self.coordination_key("workers"), worker_id)

    @converted
    def workers(self) -> dict[str, bytes]:
        """Return each live worker's raw heartbeat, by worker id; members that are not UTF-8 are dropped."""
        return {worker_id: raw for worker_id, (raw, _) in self._heartbeats().items()}

    @converted
    def heartbeats(self) -> dict[str, Heartbeat]:
        """Return each live worker's decoded heartbeat and its age; an unreadable one is logged and skipped."""
        found = {}
        for worker_id, (raw, pttl_ms) in self._heartbeats().items():
            try:
                info = _json(raw)
            except ValueError as exc:
                info = exc
            if not isinstance(info, dict):
                logger.warning("Worker %r has an unreadable heartbeat %s: skipped", worker_id, _escaped(raw))
                continue
            ttl_s = info.get("ttl_s")
            fresh = isinstance(ttl_s, int | float) and not isinstance(ttl_s, bool) and pttl_ms >= 0
            age = max(0.0, float(ttl_s) - pttl_ms / 1000) if fresh else None  # type: ignore[arg-type]
            found[worker_id] = Heartbeat(info, None if age is None else round(age, 3))
        return found

    def _heartbeats(self) -> dict[str, tuple[bytes, int]]:
        members: Any = self.client.smembers(self.coordination_key("workers"))
        ids, garbage = [], []
        for member in members:
            try:
                ids.append(member.decode())
            except UnicodeDecodeError:
                garbage.append(member)
        if garbage:
            logger.warning("Workers set held %d member(s) that are not UTF-8: removed", len(garbage))
            self.client.srem(self.coordination_key("workers"), *garbage)
        ids.sort()
        pipe = self.client.pipeline(transaction=False)
        for worker_id in ids:
            pipe.get(self.coordination_key("worker", worker_id))
            pipe.pttl(self.coordination_key("worker", worker_id))
        replies = pipe.execute() if ids else []
        alive = {w: (raw, int(pttl)) for w, raw, pttl in zip(ids, replies[::2], replies[1::2], strict=True) if raw}
        gone = set(ids) - set(alive)
        if gone:
            self.client.srem(self.coordination_key("workers"), *gone)
        return alive

    # Control commands and their replies -------------------------------------------------------

    @converted
    def send_control(self, worker_id: str, command: dict[str, object]) -> None:
        """Queue a command for one worker; it sits there until that worker's parent reads it."""
        key = self.coordination_key("ctl", worker_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, json.dumps(command))
        pipe.expire(key, 86400)
        pipe.execute()

    @converted
    def send_controls(self, worker_ids: list[str], command: dict[str, object], timeout_s: float) -> None:
        """Queue one command for several workers, valid for timeout_s on Redis' clock (its deadline_ms)."""
        deadline_ms = int((self.redis_time() + timeout_s) * 1000)
        message = json.dumps({**command, "deadline_ms": deadline_ms})
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            key = self.coordination_key("ctl", worker_id)
            pipe.rpush(key, message)
            pipe.expire(key, int(timeout_s) + CONTROL_LIST_TTL_S)
        pipe.execute()

    @converted
    def pop_control(self, worker_id: str) -> list[Command | Refused]:
        """Take a worker's control messages; a stale, oversized or malformed one comes back Refused."""
        pipe = Batch(self.client)
        pipe.command(("LPOP", self.coordination_key("ctl", worker_id), 100))
        pipe.script(self.scripts.clock, [self.coordination_key("clock")], [])
        raw, (seconds, micros) = pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return [self._control(item, now_ms) for item in raw or []]

    def _control(self, raw: bytes, now_ms: int) -> Command | Refused:
        if len(raw) > MAX_MESSAGE_BYTES:
            return Refused(f"a control message of {len(raw)} bytes (at most {MAX_MESSAGE_BYTES}): {_escaped(raw)}")
        try:
            message = parse(_json(raw))
        except ValueError as exc:
            return Refused(f"an undecodable control message ({exc}): {_escaped(raw)}")
        if isinstance(message, Command) and message.deadline_ms is not None and now_ms > message.deadline_ms:
            late = (now_ms - message.deadline_ms) / 1000
            return Refused(f"its sender stopped waiting {late:.1f} s ago (Redis time)", message.name)
        return message

    @converted
    def reply(self, request_id: str, payload: dict[str, object], ttl_s: int = 60) -> None:
        """Push a worker's reply to a control request onto the request's reply list."""
        key = self.coordination_key("reply", request_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, json.dumps(payload, default=str))
        pipe.expire(key, ttl_s)
        pipe.execute()

    @converted
    def wait_reply(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        """Block until a reply arrives ({"worker", "ok", "data", "error"}) or the timeout passes (None).

        An unreadable reply is logged and skipped (None), as if none had come.
        """
        got: Any = self.client.blpop([self.coordination_key("reply", request_id)], timeout=max(timeout, 0.01))
        if got is None:
            return None
        try:
            reply = _json(got[1])
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("worker"), str):
            logger.warning("Unreadable reply to control request %s skipped: %s", request_id, _escaped(got[1]))
            return None
        error = reply.get("error")
        return {
            "worker": reply["worker"],
            "ok": reply.get("ok") is True,
            "data": reply.get("data"),
            "error": error if isinstance(error, str) else "" if error is None else repr(error),
        }

    @converted
    def forget_replies(self, request_id: str) -> None:
        self.client.delete(self.coordination_key("reply", request_id))
