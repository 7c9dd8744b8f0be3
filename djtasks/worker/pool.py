"""What the parent's helpers (remote control, the duties) may see of the supervisor and ask of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from djtasks.core.conf import Settings
from djtasks.transport.broker import Claim
from djtasks.worker.protocol import ChildLimits


@dataclass(frozen=True, slots=True)
class ChildView:
    """A child as the parent last heard from it."""

    index: int
    pid: int | None
    processed: int
    held: tuple[Claim, ...]  # the claims it holds, reserved or executing
    executing: str | None  # the id of the task it executes
    running_s: float  # for how long it has executed that task
    retiring: bool  # asked to stop by pool_shrink: not replaced when it exits


class Pool(Protocol):
    """The supervisor, as remote control and the duties use it."""

    @property
    def worker_id(self) -> str: ...

    @property
    def config(self) -> Settings: ...

    @property
    def db(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def limits(self) -> ChildLimits: ...

    @property
    def queues(self) -> list[str]: ...

    @property
    def concurrency(self) -> int: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def pool_kind(self) -> str: ...

    @property
    def autoscale(self) -> tuple[int, int] | None: ...

    @property
    def autoscale_cooldown(self) -> float: ...

    @property
    def stop_requested_at(self) -> float | None: ...

    @property
    def cold(self) -> bool: ...

    def children(self) -> list[ChildView]:
        """Describe the children, in the order they were spawned."""

    def collect(self) -> None:
        """Take in the children's pending reports."""

    def grow(self, n: int) -> None:
        """Spawn n more children."""

    def retire(self, indexes: list[int]) -> None:
        """Stop these children warmly (each finishes its task) and do not replace them."""

    def set_queues(self, queues: list[str]) -> None:
        """Consume from these queues from now on, in every child."""

    def set_events(self, on: bool) -> None:
        """Write events from now on (or stop writing them), in the parent and every child."""

    def revoke(self, task_id: str, *, terminate: bool) -> None:
        """Keep a revoked task held by a child from running, or kill its child if it runs and terminate is set."""

    def request_warm_stop(self) -> None:
        """Stop as a first SIGTERM would (a second request stops cold)."""
