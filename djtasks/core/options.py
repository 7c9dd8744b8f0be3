"""Per-call execution options (what apply_async accepts), as one frozen object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djtasks.core.exceptions import ImproperlyDeclared

CELERY_PRIORITY_MAX = 9


def from_celery_priority(value: int) -> int:
    """Map Celery's 0..9 (9 runs first, as in apply_async's docs) onto Django's -100..100."""
    if type(value) is not int or not 0 <= value <= CELERY_PRIORITY_MAX:
        raise ImproperlyDeclared("celery_priority must be a whole number between 0 and 9 (9 runs first).")
    return round((value - 4.5) * 200 / CELERY_PRIORITY_MAX)


def aware(value: datetime | str, name: str) -> datetime:
    """Return an aware datetime; a naive one is read in the project's TIME_ZONE."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ImproperlyDeclared(f"{name} {value!r} is not an ISO 8601 datetime.")
        value = parsed
    if not isinstance(value, datetime):
        raise ImproperlyDeclared(f"{name} must be a datetime, not {type(value).__name__}.")
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def expiry(value: float | int | datetime | str | None, now: datetime) -> datetime | None:
    """Turn Celery's expires (seconds from now, or a datetime) into an aware datetime."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return now + timedelta(seconds=float(value))
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
            raise ImproperlyDeclared(f"{name} takes signatures such as add.s(16), not {item!r}.")
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
            raise ImproperlyDeclared("Pass either countdown or eta, not both.")
        if priority is not None and celery_priority is not None:
            raise ImproperlyDeclared("Pass either priority (-100..100) or celery_priority (0..9), not both.")
        if celery_priority is not None:
            priority = from_celery_priority(celery_priority)
        if countdown is not None:
            eta = now + timedelta(seconds=float(countdown))
        elif eta is not None:
            eta = aware(eta, "eta")
        if task_id is not None and (not isinstance(task_id, str) or not 0 < len(task_id) <= 255):
            raise ImproperlyDeclared("task_id must be a non-empty string of at most 255 characters.")
        headers = dict(headers or {})
        if headers:
            try:
                json.dumps(headers, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ImproperlyDeclared(f"headers must be JSON-serializable: {exc}") from None
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
