"""What steering the fleet needs of Redis: worker name claims, paused queues, workers seen, waiting ids.

- A worker's name is claimed (SET NX with an expiry the worker renews), so two live workers
  never share one: control lists, heartbeats and the rows' worker field are keyed by it.
- A paused queue has a flag key of its own (paused_key, beside the queue's keys); the claim
  script takes nothing from a queue whose flag exists, on every worker, until it is removed.
- Heartbeats also note each worker in a sorted set by time (workers_seen), so the admin's worker
  filter offers workers that are gone without scanning the task table.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from djtasks.transport import decode
from djtasks.transport.connection import Connection, converted

SEEN_KEPT = 500  # the workers_seen set keeps this many names, the most recent


class Fleet(Connection):
    # Start-up ---------------------------------------------------------------------------------

    @converted
    def refusal(self) -> str | None:
        """Ping Redis: None if it answers, the reason if it refuses us (a password, an ACL).

        An unreachable Redis raises BrokerUnavailable: that may pass, a refusal will not.
        """
        try:
            self.client.ping()
        except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
            return f"Redis refused this worker: {exc.__class__.__name__}: {exc}"
        return None

    # Worker names -----------------------------------------------------------------------------

    def name_key(self, worker_id: str) -> str:
        return self.coordination_key("name", worker_id)

    @converted
    def claim_name(self, worker_id: str, owner: str, ttl_ms: int) -> str | None:
        """Claim (or renew) a worker name for `owner`; return None if it is ours, else its holder."""
        key = self.name_key(worker_id)
        if self.client.set(key, owner, nx=True, px=ttl_ms):
            return None
        holder: Any = self.client.get(key)
        if holder is None:  # expired between the two calls
            return None if self.client.set(key, owner, nx=True, px=ttl_ms) else "?"
        if holder == owner.encode():
            self.client.pexpire(key, ttl_ms)
            return None
        return decode.text(holder) or repr(holder)

    @converted
    def take_over_name(self, worker_id: str, stale: str, owner: str, ttl_ms: int) -> bool:
        """Replace a claim whose holder is known to be dead, unless it changed meanwhile."""
        key = self.name_key(worker_id)
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(key)
                if decode.text(pipe.get(key) or b"") != stale:
                    return False
                pipe.multi()
                pipe.set(key, owner, px=ttl_ms)
                pipe.execute()
            except redis.WatchError:
                return False
        return True

    @converted
    def release_name(self, worker_id: str, owner: str) -> None:
        key = self.name_key(worker_id)
        if self.client.get(key) == owner.encode():
            self.client.delete(key)

    @converted
    def note_seen(self, worker_id: str) -> None:
        """Remember that this worker was alive now (for the admin's worker filter)."""
        key = self.coordination_key("workers-seen")
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {worker_id: time.time()})
        pipe.zremrangebyrank(key, 0, -SEEN_KEPT - 1)
        pipe.execute()

    @converted
    def seen_workers(self, limit: int = 200) -> list[str]:
        """The names of the workers seen most recently (alive or not), newest first."""
        raw: Any = self.client.zrevrange(self.coordination_key("workers-seen"), 0, limit - 1)
        return [name for name in (decode.text(item) for item in raw) if name]

    # Paused queues ----------------------------------------------------------------------------

    def paused_key(self, queue: str) -> str:
        """The flag that pauses a queue: a key of the queue's own, since the claim script reads it (keys.py)."""
        return self.queue_key(queue, "paused")

    @converted
    def pause_queue(self, queue: str, reason: str) -> bool:
        """Pause a queue on every worker; False if it was paused already."""
        return bool(self.client.set(self.paused_key(queue), reason or "paused", nx=True))

    @converted
    def resume_queue(self, queue: str) -> bool:
        """Resume a paused queue and wake its idle consumers; False if it was not paused."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.paused_key(queue))
        pipe.lpush(self.wake_key(queue), "1")
        pipe.ltrim(self.wake_key(queue), 0, 63)
        removed = pipe.execute()[0]
        return bool(removed)

    @converted
    def paused(self, queues: list[str]) -> dict[str, str]:
        """Return the paused queues among these, with what was said when they were paused."""
        if not queues:
            return {}
        pipe = self.client.pipeline(transaction=False)  # one GET per queue: each flag is in its queue's slot
        for queue in queues:
            pipe.get(self.paused_key(queue))
        values = pipe.execute()
        return {q: decode.text(v) or "paused" for q, v in zip(queues, values, strict=True) if v is not None}  # type: ignore[arg-type]

    # Waiting ids ------------------------------------------------------------------------------

    @converted
    def due_times(self, queue: str, ids: list[str]) -> dict[str, float]:
        """Return when each of these ids is due in the queue's scheduled set (unix time), if it is there."""
        if not ids:
            return {}
        scores: Any = self.client.zmscore(self.queue_key(queue, "scheduled"), ids)
        return {task_id: score / 1000.0 for task_id, score in zip(ids, scores, strict=True) if score is not None}

    @converted
    def due_now(self, queue: str, ids: list[str]) -> int:
        """Make scheduled ids due now (only those still scheduled); the next claim moves them to the queue."""
        if not ids:
            return 0
        now_ms = int(self.redis_time_ms())
        key = self.queue_key(queue, "scheduled")
        changed: Any = self.client.zadd(key, dict.fromkeys(ids, now_ms), xx=True, ch=True)
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.wake_key(queue), "1")
        pipe.ltrim(self.wake_key(queue), 0, 63)
        pipe.execute()
        return int(changed)

    def redis_time_ms(self) -> float:
        seconds, micros = self.client.time()  # type: ignore[misc]
        return int(seconds) * 1000 + int(micros) / 1000

    @converted
    def forget_many(self, queue: str, ids: list[str]) -> None:
        """Take waiting ids of a queue out of Redis (a purge: their rows are REVOKED), and wake their readers."""
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.queue_key(queue, "ready"), *ids)
        pipe.zrem(self.queue_key(queue, "scheduled"), *ids)
        pipe.hdel(self.queue_key(queue, "messages"), *ids)
        pipe.hdel(self.queue_key(queue, "deliveries"), *ids)
        for task_id in ids:
            pipe.publish(self.done_channel(task_id), "done")
        pipe.execute()

    @converted
    def rate_intervals(self) -> dict[str, float]:
        """Every runtime rate override: task name -> ms between starts (0: no limit); unreadable ones left out."""
        raw: Any = self.client.hgetall(self.coordination_key("rl-overrides"))
        found = {}
        for field, value in raw.items():
            name, interval = decode.text(field), decode.number(value)
            if name and interval is not None and 0 <= interval <= 1e12:
                found[name] = interval
        return found

    @converted
    def ready_counts(self, queues: list[str]) -> dict[str, int]:
        """Return how many ids wait, ready to run, in each of these queues."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zcard(self.queue_key(queue, "ready"))
        return dict(zip(queues, pipe.execute(), strict=True)) if queues else {}
