"""What a child knows about an attempt: the claim it started (Started) and how it ended (Outcome).

describe() turns whatever a task raised into a FAILURE outcome without raising itself: an
exception whose str() raises, a class with a 300-character name, a message with NUL characters
or a million of them are all recorded (escaped and cut to size where they must be).
"""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections

from djtasks.calling.declaration import Task
from djtasks.core.conf import Settings
from djtasks.core.exceptions import WriteRefused
from djtasks.core.states import FAILURE
from djtasks.core.values import storable_text
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Claim
from djtasks.worker import workflow

EXCEPTION_TYPE_LENGTH = 255  # TaskRecord.exception_type
REFUSED_TYPE = f"{WriteRefused.__module__}.{WriteRefused.__qualname__}"


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
    # What the task raised, in this process only (never stored): for hooks, the log and the signals.
    error: BaseException | None = field(default=None, repr=False, compare=False)
    expected: bool = False  # an error the task declares in throws=: logged without its traceback
    rewrite: dict[str, Any] | None = None  # replace(): the row's new call, written with the RETRY


@dataclass
class Started:
    """A claim whose row this attempt now holds: the row as read at the start, and its task."""

    claim: Claim
    record: TaskRecord
    task: Task
    started_at: datetime
    # What an outcome write adds to (the errors list, the retry count), as read at the start.
    _base: tuple[list[Any], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._base = (list(self.record.errors), self.record.retries)

    @property
    def token(self) -> str:
        return self.claim.token

    @property
    def retries(self) -> int:
        """The retries before this attempt (the row's count grows when a RETRY is written)."""
        return self._base[1]

    def rewind(self) -> None:
        """Undo in memory what an outcome write whose transaction rolled back added, so it can be written again."""
        errors, retries = self._base
        self.record.errors, self.record.retries = list(errors), retries


def db_lease(config: Settings) -> timedelta:
    """The database lease: a little shorter than the Redis lease, both extended together."""
    return timedelta(seconds=max(config.LEASE_SECONDS - 5.0, config.LEASE_SECONDS * 0.8))


def alone(record: TaskRecord, db: str) -> bool:
    """Tell whether an outcome is written by one statement (no workflow follows it), outside any transaction."""
    return not workflow.has_followers(record) and not connections[db].in_atomic_block


def describe(exc: BaseException) -> Outcome:
    """Describe an error as a FAILURE outcome: its class path, message and traceback; never raises."""
    return Outcome(
        state=FAILURE,
        exception_type=class_path(type(exc)),
        message=storable(safe_str(exc)),
        traceback=storable(safe_traceback(exc)),
        error=exc,
    )


def refused(outcome: Outcome, exc: BaseException) -> Outcome:
    """The FAILURE recorded instead of an outcome the database refused: why, without the refused values."""
    reason = f"{type(exc).__qualname__}: {safe_str(exc)}"
    return Outcome(
        state=FAILURE,
        exception_type=REFUSED_TYPE,
        message=storable(f"the database refused to store this attempt's outcome ({outcome.state}): {reason}")[:4096],
        finished_at=outcome.finished_at,
    )


def class_path(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    path = f"{module}.{cls.__qualname__}" if isinstance(module, str) else cls.__qualname__
    return storable(path)[:EXCEPTION_TYPE_LENGTH]


def safe_str(exc: BaseException) -> str:
    """str(exc), or a note saying that it failed."""
    try:
        return str.__str__(str(exc))
    except BaseException as err:  # noqa: BLE001 - a task's exception may make str() raise anything
        return f"<str() of this {type(exc).__qualname__} raised {type(err).__qualname__}>"


def safe_traceback(exc: BaseException) -> str:
    try:
        return "".join(tb.format_exception(exc))
    except BaseException:  # noqa: BLE001 - as above: the traceback is best effort
        try:
            return "".join(tb.format_tb(exc.__traceback__)) + f"{class_path(type(exc))}: {safe_str(exc)}\n"
        except BaseException:  # noqa: BLE001
            return ""


def storable(text: str) -> str:
    """Make untrusted text storable in any database: NUL and surrogates escaped, long text cut."""
    return storable_text(text)
