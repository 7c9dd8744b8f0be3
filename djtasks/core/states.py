"""Task states (Celery's names) and their mapping onto django.tasks statuses."""

from django.db import models
from django.tasks import TaskResultStatus
from django.utils.translation import gettext_lazy as _

PENDING = "PENDING"
STARTED = "STARTED"
RETRY = "RETRY"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"


class State(models.TextChoices):
    PENDING = PENDING, _("Pending")
    STARTED = STARTED, _("Started")
    RETRY = RETRY, _("Retry")
    SUCCESS = SUCCESS, _("Success")
    FAILURE = FAILURE, _("Failure")
    REVOKED = REVOKED, _("Revoked")


READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, STARTED, RETRY})
# States from which a delivered message may start the task, and in which an attempt may write.
RUNNABLE_STATES = UNREADY_STATES
RUNNABLE = (PENDING, STARTED, RETRY)

_TO_DJANGO = {
    PENDING: TaskResultStatus.READY,
    RETRY: TaskResultStatus.READY,
    STARTED: TaskResultStatus.RUNNING,
    SUCCESS: TaskResultStatus.SUCCESSFUL,
    FAILURE: TaskResultStatus.FAILED,
    REVOKED: TaskResultStatus.FAILED,
}


def to_django_status(state: str, *, running: bool = False) -> TaskResultStatus:
    """Map a Celery state to django.tasks' status; a claimed PENDING row is RUNNING."""
    if running and state == PENDING:
        return TaskResultStatus.RUNNING
    return _TO_DJANGO[state]
