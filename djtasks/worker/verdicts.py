"""What starting a claim may decide (worker/start.py decides; worker/caps.py for capped and keyed tasks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from djtasks.calling.declaration import Task


@dataclass(frozen=True, slots=True)
class Run:
    """Start the attempt; `at`, when given, is when its rate-limit start or cap slot was granted.

    Such a start is stamped from then, not from the batch's clock read before the grant: the
    starts a limit spaces stay as far apart in the record as the limit made them.
    """

    task: Task
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """A duplicate delivery of a finished task: ack it without waking its waiters again."""

    state: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: back to the scheduled set for delay_ms; `why` is logged when given."""

    delay_ms: int
    why: str = ""


@dataclass(frozen=True, slots=True)
class Parked:
    """Its concurrency cap is full: the cap script handed the claim back to wait for a slot (or was not its owner)."""

    why: str


@dataclass(frozen=True, slots=True)
class Expire:
    """Picked up after its expiry: revoke the row, ack the message."""


@dataclass(frozen=True, slots=True)
class SetAside:
    """It can never run: fail the row with exc_type, dead-letter the message (with its text if raw)."""

    reason: str
    exc_type: str
    raw: bool = False


Verdict = Run | Drop | Wait | Parked | Expire | SetAside
