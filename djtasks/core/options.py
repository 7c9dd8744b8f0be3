"""Per-call execution options (what apply_async accepts), as one frozen object.

Every option is checked here, and a value that cannot be stored as given raises InvalidCall
naming it (a TypeError and a ValueError, as the errors it replaces): a countdown of NaN or
10**12, a task id with a newline, headers that are not plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djtasks.core.exceptions import InvalidCall
from djtasks.core.logs import CONTROL
from djtasks.core.values import Unstorable, plain, text_problem

CELERY_PRIORITY_MAX = 9
ID_LENGTH = 255  # TaskRecord.id, parent_id, root_id, group_id, task_name
QUEUE_LENGTH = 100  # TaskRecord.queue
MAX_RETRIES_COUNT = 2**31 - 1  # TaskRecord.retries: a PositiveIntegerField


def check_name(what: str, value: object, limit: int) -> str:
    """Return a name or id that every database stores as it is; raise InvalidCall saying why not.

    Non-empty, at most `limit` characters, no control characters (they would forge log lines),
    no NUL and no surrogates (PostgreSQL refuses them).
    """
    if not isinstance(value, str) or not value:
        raise InvalidCall(f"{what} must be a non-empty string, not {value!r}.")
    if len(value) > limit:
        raise InvalidCall(f"{what} must be at most {limit} characters long; {value[:40]!r}... has {len(value)}.")
    if CONTROL.search(value) or text_problem(value):
        raise InvalidCall(f"{what} {value[:100]!r} contains a control character or a surrogate.")
    return str.__str__(value)


def seconds(what: str, value: object) -> float:
    """Return a finite number of seconds; raise InvalidCall for NaN, infinity or what is not a number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise InvalidCall(f"{what} must be a number of seconds, not {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidCall(f"{what} must be a finite number of seconds, not {value!r}.")
    return number


def later(now: datetime, what: str, value: object) -> datetime:
    """Return now + value seconds; raise InvalidCall if that is not a date Python can hold."""
    try:
        return now + timedelta(seconds=seconds(what, value))
    except (OverflowError, ValueError):
        raise InvalidCall(f"{what}={value!r} is beyond the dates Python can hold (the year 9999).") from None


def from_celery_priority(value: int) -> int:
    """Map Celery's 0..9 (9 runs first, as in apply_async's docs) onto Django's -100..100."""
    if type(value) is not int or not 0 <= value <= CELERY_PRIORITY_MAX:
        raise InvalidCall("celery_priority must be a whole number between 0 and 9 (9 runs first).")
    return round((value - 4.5) * 200 / CELERY_PRIORITY_MAX)


def aware(value: datetime | str, name: str) -> datetime:
    """Return an aware datetime; a naive one is read in the project's TIME_ZONE."""
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:  # well formed, but not a date (the 30th of February)
            parsed = None
        if parsed is None:
            raise InvalidCall(f"{name} {value[:100]!r} is not an ISO 8601 datetime.")
        value = parsed
    if not isinstance(value, datetime):
        raise InvalidCall(f"{name} must be a datetime, not {type(value).__name__}.")
    try:
        return timezone.make_aware(value) if timezone.is_naive(value) else value
    except (OverflowError, ValueError) as exc:
        raise InvalidCall(f"{name} {value!r} cannot be read in the project's time zone ({exc}).") from None


def expiry(value: float | int | datetime | str | None, now: datetime) -> datetime | None:
    """Turn Celery's expires (seconds from now, or a datetime) into an aware datetime."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return later(now, "expires", value)
    return aware(value, "expires")  # type: ignore[arg-type]


def _signatures(value: Any, name: str) -> tuple[dict[str, Any], ...]:
    """Accept a signature, a dict, or a list of them; return their JSON dicts."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        data = item.as_dict() if hasattr(item, "as_dict") else item
        if not isinstance(data, Mapping) or "task" not in data and "subtask_type" not in data:
            raise InvalidCall(f"{name} takes signatures such as add.s(16), not {item!r}.")
        out.append(dict(data))
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOptions:
    task_id: str | None = None
    queue: str | None = None
    priority: int | None = None
    eta: datetime | None = None
    expires: datetime | None = None
    ignore_result: bool | None = None
    link: tuple[dict[str, Any], ...] = ()
    link_error: tuple[dict[str, Any], ...] = ()
    headers: dict[str, Any] = field(default_factory=dict)
    # Set by the canvas: where this invocation sits in a workflow.
    parent_id: str = ""
    root_id: str = ""
    group_id: str = ""
    chain: tuple[dict[str, Any], ...] = ()
    chord: str = ""
    retries: int = 0

    @classmethod
    def build(
        cls,
        *,
        task_id: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        celery_priority: int | None = None,
        countdown: float | None = None,
        eta: datetime | str | None = None,
        expires: float | datetime | str | None = None,
        ignore_result: bool | None = None,
        link: Any = None,
        link_error: Any = None,
        headers: dict[str, Any] | None = None,
        parent_id: str = "",
        root_id: str = "",
        group_id: str = "",
        chain: Any = None,
        chord: str = "",
        retries: int = 0,
    ) -> ExecutionOptions:
        """Validate apply_async's keywords and fold countdown into an aware eta."""
        now = timezone.now()
        if countdown is not None and eta is not None:
            raise InvalidCall("Pass either countdown or eta, not both.")
        if priority is not None and celery_priority is not None:
            raise InvalidCall("Pass either priority (-100..100) or celery_priority (0..9), not both.")
        if celery_priority is not None:
            priority = from_celery_priority(celery_priority)
        if countdown is not None:
            eta = later(now, "countdown", countdown)
        elif eta is not None:
            eta = aware(eta, "eta")
        if task_id is not None:
            task_id = check_name("task_id", task_id, ID_LENGTH)
        if queue is not None:
            queue = check_name("queue", queue, QUEUE_LENGTH)
        parent_id, root_id, group_id, chord = (
            check_name(what, value, ID_LENGTH) if value else ""
            for what, value in (
                ("parent_id", parent_id),
                ("root_id", root_id),
                ("group_id", group_id),
                ("chord", chord),
            )
        )
        if type(retries) is not int or not 0 <= retries <= MAX_RETRIES_COUNT:
            raise InvalidCall(f"retries must be a whole number between 0 and {MAX_RETRIES_COUNT}, not {retries!r}.")
        if ignore_result is not None and not isinstance(ignore_result, bool):
            raise InvalidCall(f"ignore_result must be True, False or None, not {ignore_result!r}.")
        if headers is not None and not isinstance(headers, Mapping):
            raise InvalidCall(f"headers must be a dict, not {type(headers).__name__}.")
        try:
            headers = plain(dict(headers or {}), "headers")
        except Unstorable as exc:
            raise InvalidCall(f"Header {exc.path} cannot be stored: it {exc.problem}.") from None
        return cls(
            task_id=task_id,
            queue=queue,
            priority=priority,
            eta=eta,
            expires=expiry(expires, now),
            ignore_result=ignore_result,
            link=_signatures(link, "link"),
            link_error=_signatures(link_error, "link_error"),
            headers=headers,
            parent_id=parent_id,
            root_id=root_id,
            group_id=group_id,
            chain=_signatures(chain, "chain"),
            chord=chord,
            retries=retries,
        )


# What a call without options (delay()) uses: nothing in it depends on the time of the call.
NO_OPTIONS = ExecutionOptions()
