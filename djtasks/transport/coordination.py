"""Coordination between processes: locks, the epoch marker, heartbeats, control commands and replies."""

from __future__ import annotations

import json

from djtasks.transport.connection import Connection, converted


class Coordination(Connection):
    # Locks and the epoch ----------------------------------------------------------------------

    @converted
    def acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take a short-lived lock (or keep it, if this owner holds it)."""
        key = self.key("lock", name)
        if self.client.set(key, owner, nx=True, px=ttl_ms):
            return True
        if self.client.get(key) == owner.encode():
            self.client.pexpire(key, ttl_ms)
            return True
        return False

    @converted
    def ensure_epoch(self, token: str) -> bool:
        """Create the epoch marker if missing; True means Redis lost its data (or is new)."""
        return bool(self.client.set(self.key("epoch"), token, nx=True))

    # Heartbeats and the workers set -----------------------------------------------------------

    @converted
    def heartbeat(self, worker_id: str, info: str, ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("worker", worker_id), info, ex=ttl_s)
        pipe.sadd(self.key("workers"), worker_id)
        pipe.execute()

    @converted
    def forget_worker(self, worker_id: str) -> None:
        self.client.delete(self.key("worker", worker_id))
        self.client.srem(self.key("workers"), worker_id)

    @converted
    def workers(self) -> dict[str, bytes]:
        ids = sorted(w.decode() for w in self.client.smembers(self.key("workers")))  # type: ignore[union-attr]
        infos: list[bytes | None] = self.client.mget([self.key("worker", w) for w in ids]) if ids else []  # type: ignore[assignment]
        alive = {w: info for w, info in zip(ids, infos, strict=True) if info is not None}
        gone = set(ids) - set(alive)
        if gone:
            self.client.srem(self.key("workers"), *gone)
        return alive

    # Control commands and their replies -------------------------------------------------------

    @converted
    def send_control(self, worker_id: str, command: dict[str, object]) -> None:
        """Queue a command for one worker; it sits there until that worker's parent reads it."""
        key = self.key("ctl", worker_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, json.dumps(command))
        pipe.expire(key, 86400)
        pipe.execute()

    @converted
    def send_controls(self, worker_ids: list[str], command: dict[str, object], ttl_s: int) -> None:
        """Queue one command for several workers in one round trip; unread commands expire after ttl_s."""
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            key = self.key("ctl", worker_id)
            pipe.rpush(key, json.dumps(command))
            pipe.expire(key, ttl_s)
        pipe.execute()

    @converted
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

    @converted
    def reply(self, request_id: str, payload: dict[str, object], ttl_s: int = 60) -> None:
        """Push a worker's reply to a control request onto the request's reply list."""
        key = self.key("reply", request_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, json.dumps(payload, default=str))
        pipe.expire(key, ttl_s)
        pipe.execute()

    @converted
    def wait_reply(self, request_id: str, timeout: float) -> dict[str, object] | None:
        """Block until a reply to the request arrives (its decoded JSON) or the timeout passes (None)."""
        got = self.client.blpop([self.key("reply", request_id)], timeout=max(timeout, 0.01))
        if got is None:
            return None
        reply = json.loads(got[1])  # type: ignore[index]
        return reply if isinstance(reply, dict) else None

    @converted
    def forget_replies(self, request_id: str) -> None:
        self.client.delete(self.key("reply", request_id))
