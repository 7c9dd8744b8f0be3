"""An entry in Django's admin log (LogEntry) for every control the admin carries out, in the user's history."""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest

from djtasks.record.steering import Fleet


def audit(request: HttpRequest, what: str, target: str, message: str) -> LogEntry:
    """Log that the request's user did `what` to `target` ("worker w1@host", "queue images", a task name)."""
    return LogEntry.objects.create(
        user_id=int(request.user.pk or 0),
        content_type=ContentType.objects.get_for_model(Fleet, for_concrete_model=False),
        object_id=target[:255],
        object_repr=f"{what} {target}"[:200],
        action_flag=CHANGE,
        change_message=message[:2000],
    )
