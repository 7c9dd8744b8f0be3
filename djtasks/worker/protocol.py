"""The parent/child protocol: a child's limits, its reports to the parent, the parent's orders; JSON over a Pipe.

A child reports the claims it holds (so the parent extends their leases and hands them back if
the child dies) and the task it executes (so the parent enforces the hard time limit). The
parent orders a child to skip reserved tasks revoked meanwhile, and to consume other queues.
The Reporter is the child's end of the pipe. Either end reads what the other sent totally: a
message that is not one is logged and ignored.
"""

from __future__ import annotations

import json
import logging
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from djtasks.transport.broker import Claim

logger = logging.getLogger("djtasks")


@dataclass(frozen=True)
class ChildLimits:
    """What a child enforces: recycling after max_tasks or max_memory_kib, and the time limits."""

    max_tasks: int | None = None
    max_memory_kib: int | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None


def encode_claim(claim: Claim) -> dict[str, Any]:
    """A claim as JSON; its bytes (envelope, an undecodable id) cross the pipe unchanged."""
    data: dict[str, Any] = {
        "id": claim.id,
        "envelope": claim.envelope.decode("utf-8", "surrogateescape"),
        "deliveries": claim.deliveries,
        "token": claim.token,
        "queue": claim.queue,
    }
    if claim.raw_id is not None:
        data["raw_id"] = claim.raw_id.hex()
        data["defect"] = claim.defect
    return data


def decode_claim(data: dict[str, Any]) -> Claim:
    """Read a claim; a field of the wrong type raises ValueError."""
    if not isinstance(data, dict):
        raise ValueError(f"a claim is an object, not {type(data).__name__}")
    raw_id = data.get("raw_id")
    return Claim(
        id=_text(data["id"]),
        envelope=_text(data["envelope"]).encode("utf-8", "surrogateescape"),
        deliveries=_int(data["deliveries"]),
        token=_text(data["token"]),
        queue=_text(data["queue"]),
        raw_id=None if raw_id is None else bytes.fromhex(_text(raw_id)),
        defect=_text(data.get("defect", "")),
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, not {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, not {type(value).__name__}")
    return value


def _seconds(value: object) -> float | None:
    if value is not None and (type(value) not in (int, float) or not value == value):
        raise ValueError(f"expected seconds or null, not {value!r}")
    return value  # type: ignore[return-value]


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, not {type(value).__name__}")
    return value


def _texts(value: object) -> tuple[str, ...]:
    return tuple(_text(item) for item in _list(value))


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
    "start": lambda data: Holding(tuple(decode_claim(claim) for claim in _list(data["claims"]))),
    "exec": lambda data: Executing(_text(data["id"]), _seconds(data["hard"])),
    "done": lambda data: Released(_texts(data["ids"])),
}


def decode_report(raw: bytes) -> Report | None:
    """Read a child's report; None (logged) for anything that is not one."""
    try:
        data = json.loads(raw)
        return _REPORTS[data["event"]](data)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        logger.error("Unreadable report from a child (%s: %s): %.200r", exc.__class__.__name__, exc, raw)
        return None


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


@dataclass(frozen=True, slots=True)
class Events:
    """Write task events from now on, or stop writing them (enable_events, disable_events)."""

    on: bool

    def encode(self) -> bytes:
        return json.dumps({"events": self.on}).encode()


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, not {type(value).__name__}")
    return value


Order = Skip | Consume | Events

_ORDERS: dict[str, Callable[[dict[str, Any]], Order]] = {
    "skip": lambda data: Skip(_texts(data["skip"])),
    "queues": lambda data: Consume(_texts(data["queues"])),
    "events": lambda data: Events(_flag(data["events"])),
}


def decode_order(raw: bytes) -> Order | None:
    """Read an order of the parent; None (logged) for anything that is not one."""
    try:
        data = json.loads(raw)
        return _ORDERS[next(iter(data))](data)
    except (ValueError, KeyError, TypeError, StopIteration, RecursionError) as exc:
        logger.error("Unreadable order from the parent (%s: %s): %.200r", exc.__class__.__name__, exc, raw)
        return None


# The child's end ------------------------------------------------------------------------------


class Reporter:
    """Tell the parent which claims this child holds; safe to use from both threads."""

    def __init__(self, pipe: Connection):
        self.pipe = pipe
        self.lock = threading.Lock()
        # The queue list the parent last ordered (add_consumer / cancel_consumer), until read.
        self.queues: list[str] | None = None
        # The events switch the parent last ordered (enable_events / disable_events), until read.
        self.events: bool | None = None
        # The claims the parent knows this child holds (reported started, not yet done).
        self.held: dict[str, Claim] = {}
        self.parent_gone = False
        # Asked before every task whether an order came: one poll(2) of the pipe, where
        # Connection.poll() builds a selector each time (a tenth of a no-op task's cost).
        self.poller = select.poll()
        self.poller.register(pipe.fileno(), select.POLLIN)

    def send(self, report: Report) -> None:
        data = report.encode()
        with self.lock:
            if self.parent_gone:
                return
            try:
                self.pipe.send_bytes(data)
            except (BrokenPipeError, ConnectionResetError):
                # The parent is gone (SIGKILL): the child stops at its next look (Child.stopping).
                self.parent_gone = True

    def started(self, claims: list[Claim]) -> None:
        self.send(Holding(tuple(claims)))
        self.held.update((claim.id, claim) for claim in claims)

    def done(self, ids: list[str]) -> None:
        if ids:
            self.send(Released(tuple(ids)))
            for task_id in ids:
                self.held.pop(task_id, None)

    def executing(self, task_id: str, hard_limit: float | None) -> None:
        self.send(Executing(task_id, hard_limit))

    def orders(self) -> set[str]:
        """Read the parent's orders: ids to skip (revoked while reserved), a new queue list, the events switch."""
        skip: set[str] = set()
        while not self.parent_gone and self.poller.poll(0):  # readable, or the parent hung up (EOF)
            try:
                data = self.pipe.recv_bytes()
            except (EOFError, ConnectionResetError):  # the parent is gone
                self.parent_gone = True
                break
            match decode_order(data):
                case Skip(ids=ids):
                    skip.update(ids)
                case Consume(queues=queues):
                    self.queues = list(queues)
                case Events(on=on):
                    self.events = on
        return skip
