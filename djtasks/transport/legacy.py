"""Take over what the previous key layout holds: every key was under {PREFIX}: then (keys.LEGACY_KINDS).

Releases before per-queue keys kept one messages hash ({PREFIX}:m), owners (:o), delivery
counts (:d), one arrival counter (:seq) and each queue's ready (:q:<queue>), scheduled
(:s:<queue>) and in-flight (:i:<queue>) sets. Workers of this release move those ids into their
queues' keys as part of the outbox sweep, a batch at a time, while anything of the old layout is
left (an enqueuer not yet upgraded may still publish there):

- ready ids keep their order and priority, scheduled ids their due time, both their delivery count;
- an in-flight id is left to the (old) worker that holds it until its lease lapses on Redis'
  clock, then it is taken in as ready (as the reaper would have returned it);
- an id without a message (acked already) is dropped: its row, if still waiting, is the sweep's.

Each id is copied into the new keys first and removed from the old ones after, so a worker dying
in between leaves a copy the next pass finds already known; starting a task is fenced on its row,
so a copy is never run twice.
"""

from __future__ import annotations

import logging
from typing import Any

from djtasks.transport import decode
from djtasks.transport.connection import Batch, converted
from djtasks.transport.coordination import Coordination
from djtasks.transport.publishing import Publishing

logger = logging.getLogger("djtasks")
ADOPT_BATCH = 500


class Legacy(Publishing, Coordination):
    @converted
    def adopt_legacy(self, batch: int = ADOPT_BATCH) -> int:
        """Move up to `batch` ids per queue and set out of the previous layout; return how many moved."""
        messages = self.legacy_key("m")
        if not self.client.exists(messages):
            return 0
        moved = 0
        now_ms = int(self.redis_time() * 1000)
        for queue in self._legacy_queues():
            for kind in ("q", "s", "i"):
                moved += self._adopt(queue, kind, now_ms, batch)
        if not self.client.hlen(messages):
            self.client.delete(messages, self.legacy_key("o"), self.legacy_key("d"), self.legacy_key("seq"))
        if moved:
            logger.warning("Moved %d task id(s) from the previous key layout into their queues' keys", moved)
        return moved

    def _legacy_queues(self) -> list[str]:
        raw: Any = self.client.smembers(self.coordination_key("queues"))
        return sorted(name for name in (decode.text(member) for member in raw) if name)

    def _adopt(self, queue: str, kind: str, now_ms: int, batch: int) -> int:
        old = self.legacy_key(kind, queue)
        if kind == "i":
            rows: Any = self.client.zrange(old, "-inf", now_ms, byscore=True, offset=0, num=batch, withscores=True)
        else:
            rows = self.client.zrange(old, 0, batch - 1, withscores=True)
        if not rows:
            return 0
        ids = [raw for raw, _ in rows]
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.legacy_key("m"), ids)
        pipe.hmget(self.legacy_key("d"), ids)
        envelopes, counts = pipe.execute()
        argv: list[Any] = []
        for (raw, score), envelope, count in zip(rows, envelopes, counts, strict=True):
            if envelope is not None:
                due = str(int(score)) if kind == "s" else ""
                argv += [raw, envelope, count if count is not None else "", due]
        adopted = 0
        if argv:
            keys = [self.queue_key(queue, k) for k in ("messages", "deliveries", "seq", "ready", "scheduled")]
            copy = Batch(self.client)
            copy.script(self.scripts.adopt, keys, [len(argv) // 4, *argv])
            for command in self.wake_commands(queue, len(argv) // 4 if kind != "s" else 0):
                copy.command(command)
            adopted = int(copy.execute()[0])
        forget = self.client.pipeline(transaction=False)
        forget.zrem(old, *ids)
        for hash_kind in ("m", "d", "o"):
            forget.hdel(self.legacy_key(hash_kind), *ids)
        forget.execute()
        return adopted
