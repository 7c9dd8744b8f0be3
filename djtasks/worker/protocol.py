"""The parent/child protocol: a child's limits, its reports to the parent, the parent's orders; JSON over a Pipe.

A child reports the claims it holds (so the parent extends their leases and hands them back if
the child dies) and the task it executes (so the parent enforces the hard time limit). The
parent orders a child to skip reserved tasks revoked meanwhile, and to consume other queues.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from djtasks.transport.broker import Claim


@dataclass(frozen=True)
class ChildLimits:
    """What a child enforces: recycling after max_tasks or max_memory_kib, and the time limits."""

    max_tasks: int | None = None
    max_memory_kib: int | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None


def encode_claim(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "envelope": claim.envelope.decode("utf-8", "backslashreplace"),
        "deliveries": claim.deliveries,
        "token": claim.token,
        "queue": claim.queue,
    }


def decode_claim(data: dict[str, Any]) -> Claim:
    return Claim(
        id=data["id"],
        envelope=data["envelope"].encode(),
        deliveries=data["deliveries"],
        token=data["token"],
        queue=data["queue"],
    )


# Reports (child to parent) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """The child holds these claims now (sent before it starts them)."""

    claims: tuple[Claim, ...]

    def encode(self) -> bytes:
        return json.dumps({"event": "start", "claims": [encode_claim(c) for c in self.claims]}).encode()


@dataclass(frozen=True, slots=True)
class Executing:
    """The child begins this task; past `hard` seconds (if set) the parent kills it."""

    id: str
    hard: float | None

    def encode(self) -> bytes:
        return json.dumps({"event": "exec", "id": self.id, "hard": self.hard}).encode()


@dataclass(frozen=True, slots=True)
class Released:
    """The child no longer holds these claims: recorded and acked, sent back, or handed back."""

    ids: tuple[str, ...]

    def encode(self) -> bytes:
        return json.dumps({"event": "done", "ids": list(self.ids)}).encode()


Report = Holding | Executing | Released

_REPORTS: dict[str, Callable[[dict[str, Any]], Report]] = {
    "start": lambda data: Holding(tuple(decode_claim(claim) for claim in data["claims"])),
    "exec": lambda data: Executing(data["id"], data["hard"]),
    "done": lambda data: Released(tuple(data["ids"])),
}


def decode_report(raw: bytes) -> Report:
    """Read a child's report."""
    data = json.loads(raw)
    return _REPORTS[data["event"]](data)


# Orders (parent to child) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """Do not run these reserved tasks: they were revoked after the child claimed them."""

    ids: tuple[str, ...]

    def encode(self) -> bytes:
        return json.dumps({"skip": list(self.ids)}).encode()


@dataclass(frozen=True, slots=True)
class Consume:
    """Consume these queues from now on (add_consumer, cancel_consumer)."""

    queues: tuple[str, ...]

    def encode(self) -> bytes:
        return json.dumps({"queues": list(self.queues)}).encode()


Order = Skip | Consume

_ORDERS: dict[str, Callable[[dict[str, Any]], Order]] = {
    "skip": lambda data: Skip(tuple(data["skip"])),
    "queues": lambda data: Consume(tuple(data["queues"])),
}


def decode_order(raw: bytes) -> Order:
    """Read an order of the parent."""
    data = json.loads(raw)
    return _ORDERS[next(iter(data))](data)
