"""The supervisor's side that remote control, the duties and the autoscaler drive (the Pool of worker/pool.py)."""

from __future__ import annotations

import dataclasses
import signal
import time
from typing import Any

from djtasks.core.conf import Settings
from djtasks.worker.pool import ChildView
from djtasks.worker.pools import Pool
from djtasks.worker.protocol import Consume, Events
from djtasks.worker.slot import Slot


class Steering:
    """Grow, shrink, re-queue and switch the events of a running worker; describe its children."""

    config: Settings
    slots: dict[int, Slot]
    retiring: set[int]
    vacant: set[int]
    concurrency: int
    queues: list[str]
    stop_requested_at: float | None
    pool: Pool

    def _spawn(self, index: int) -> None:
        raise NotImplementedError

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self.stop_requested_at is not None

    @property
    def pool_kind(self) -> str:
        return self.pool.kind

    def children(self) -> list[ChildView]:
        now = time.monotonic()
        return [slot.view(now, retiring=slot.index in self.retiring) for slot in self.slots.values()]

    def collect(self) -> None:
        for slot in self.slots.values():
            if not slot.reader.closed:
                slot.read()

    def grow(self, n: int) -> None:
        for _ in range(n):
            self._spawn(max([*self.slots, *self.retiring, *self.vacant], default=-1) + 1)
        self.concurrency += n

    def retire(self, indexes: list[int]) -> None:
        for index in indexes:
            self.retiring.add(index)
            self.slots[index].signal(signal.SIGTERM)  # warm: it finishes its task, hands back the rest
        self.concurrency -= len(indexes)

    def set_queues(self, queues: list[str]) -> None:
        self.queues = queues
        for slot in self.slots.values():
            slot.tell(Consume(tuple(queues)))

    def set_events(self, on: bool) -> None:
        self.config = dataclasses.replace(self.config, ENABLE_EVENTS=on)
        for slot in self.slots.values():
            slot.tell(Events(on))

    def revoke(self, task_id: str, *, terminate: bool) -> None:
        for slot in self.slots.values():
            slot.revoke(task_id, terminate=terminate)

    def request_warm_stop(self) -> None:
        self._on_stop_signal(signal.SIGTERM, None)
