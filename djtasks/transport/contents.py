"""What the queues hold, for observers (the admin, metrics, inspect) and the outbox sweep; read-only."""

from __future__ import annotations

from collections import defaultdict

from djtasks.transport import decode
from djtasks.transport.connection import Connection, converted

MAX_QUEUE_NAME = 100
LAST_MS = 253402300799000  # 9999-12-31T23:59:59Z, the last time a datetime can hold


class Contents(Connection):
    def known(self, ids: list[str], queue: str | None = None) -> list[bool]:
        """Tell, for each id of one queue (DEFAULT_QUEUE if none is named), whether Redis holds its message."""
        return self.known_where([(task_id, queue or self.config.DEFAULT_QUEUE) for task_id in ids])

    @converted
    def known_where(self, ids: list[tuple[str, str]]) -> list[bool]:
        """Tell, for each (id, queue), whether Redis holds its message (queued, scheduled or reserved)."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, (_, queue) in enumerate(ids):
            by_queue[queue].append(index)
        if not by_queue:
            return []
        pipe = self.client.pipeline(transaction=False)
        for queue, indexes in by_queue.items():
            pipe.hmget(self.queue_key(queue, "messages"), [ids[i][0] for i in indexes])
        found = [False] * len(ids)
        for indexes, values in zip(by_queue.values(), pipe.execute(), strict=True):
            for index, value in zip(indexes, values, strict=True):
                found[index] = value is not None
        return found

    @converted
    def scheduled(self, queue: str, limit: int = 100) -> list[tuple[str, float]]:
        """Return (id, due unix time) of the queue's delayed tasks, soonest first (undecodable ones left out)."""
        key = self.queue_key(queue, "scheduled")
        rows: list[tuple[bytes, float]] = self.client.zrange(key, 0, limit - 1, withscores=True)  # type: ignore[assignment]
        found = []
        for raw, score in rows:
            task_id, defect = decode.task_id(raw)
            if defect:
                decode.skipped(key, raw, defect)
            elif not 0 <= score <= LAST_MS:
                decode.skipped(key, raw, f"its due time ({score!r} ms) is not a date")
            else:
                found.append((task_id, score / 1000.0))
        return found

    @converted
    def queue_stats(self) -> dict[str, dict[str, int]]:
        """Return the ready, scheduled and reserved counts of every queue named in the queues set."""
        key = self.coordination_key("queues")
        queues = []
        for raw in self.client.smembers(key):  # type: ignore[union-attr]
            queue = decode.text(raw)
            if queue and len(queue) <= MAX_QUEUE_NAME:
                queues.append(queue)
            else:
                decode.skipped(key, raw, "not a queue name (1 to 100 characters of UTF-8 text without NUL)")
        queues.sort()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for kind in ("ready", "scheduled", "inflight"):
                pipe.zcard(self.queue_key(queue, kind))
        counts = pipe.execute()
        return {
            q: {"ready": counts[i * 3], "scheduled": counts[i * 3 + 1], "reserved": counts[i * 3 + 2]}
            for i, q in enumerate(queues)
        }

    @converted
    def oldest_ready(self, queue: str) -> str | None:
        """Return the id that has waited longest in a queue's ready set, or None when it is empty."""
        key = self.queue_key(queue, "ready")
        found = self.scripts.oldest(keys=[key])
        if not found:
            return None
        task_id, defect = decode.task_id(found)
        if defect:
            decode.skipped(key, found, defect)
        return None if defect else task_id
