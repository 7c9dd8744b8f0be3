"""What a child knows about an attempt: the claim it started (Started) and how it ended (Outcome)."""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from djtasks.calling.declaration import Task
from djtasks.core.conf import Settings
from djtasks.core.states import FAILURE
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Claim


@dataclass
class Outcome:
    state: str
    result: Any = None
    exception_type: str = ""
    message: str = ""
    traceback: str = ""
    finished_at: datetime | None = None
    eta: datetime | None = None  # when a RETRY outcome runs again
    returned: Any = None  # the return value even under ignore_result, for links and chains


@dataclass
class Started:
    """A claim whose row this attempt now holds: the row as read at the start, and its task."""

    claim: Claim
    record: TaskRecord
    task: Task
    started_at: datetime

    @property
    def token(self) -> str:
        return self.claim.token


def db_lease(config: Settings) -> timedelta:
    """The database lease: a little shorter than the Redis lease, both extended together."""
    return timedelta(seconds=max(config.LEASE_SECONDS - 5.0, config.LEASE_SECONDS * 0.8))


def describe(exc: BaseException) -> Outcome:
    """Describe an error as a FAILURE outcome: its class path, message and traceback."""
    cls = type(exc)
    return Outcome(
        state=FAILURE,
        exception_type=f"{cls.__module__}.{cls.__qualname__}",
        message=storable(str(exc)),
        traceback=storable("".join(tb.format_exception(exc))),
    )


def storable(text: str) -> str:
    """Make untrusted text storable in any database: PostgreSQL refuses NUL characters."""
    return text.replace("\x00", "\\x00")
