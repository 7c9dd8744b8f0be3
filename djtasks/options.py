"""Per-call execution options (what apply_async accepts), as one frozen object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .exceptions import ImproperlyDeclared


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOptions:
    task_id: str | None = None
    queue: str | None = None
    priority: int | None = None
    eta: datetime | None = None

    @classmethod
    def build(
        cls,
        *,
        task_id: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
    ) -> ExecutionOptions:
        """Validate apply_async's keywords and fold countdown into an aware eta."""
        if countdown is not None and eta is not None:
            raise ImproperlyDeclared("Pass either countdown or eta, not both.")
        if countdown is not None:
            eta = timezone.now() + timedelta(seconds=float(countdown))
        elif eta is not None and timezone.is_naive(eta):
            # A naive eta is read in the project's TIME_ZONE, as documented.
            eta = timezone.make_aware(eta)
        if task_id is not None and (not isinstance(task_id, str) or not 0 < len(task_id) <= 255):
            raise ImproperlyDeclared("task_id must be a non-empty string of at most 255 characters.")
        return cls(task_id=task_id, queue=queue, priority=priority, eta=eta)
