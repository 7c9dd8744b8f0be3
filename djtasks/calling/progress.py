"""Let a running task report its progress; readers see it on the row (AsyncResult.progress)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from djtasks.core.context import current
from djtasks.core.states import RUNNABLE
from djtasks.record import sql


def report_progress(current_step: int | float, total: int | float | None = None, message: str = "") -> bool:
    """Record progress of the running task; return False outside a task or if its lease was lost."""
    running = current()
    if running is None:
        return False
    value: dict[str, Any] = {
        "current": current_step,
        "total": total,
        "message": str(message)[:500],
        "at": timezone.now().isoformat(),
    }
    if total:
        value["percent"] = round(100.0 * float(current_step) / float(total), 1)
    return bool(sql.update(running.db, {"progress": value}, id=running.id, lease_token=running.token, state=RUNNABLE))
