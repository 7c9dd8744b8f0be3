"""Public import path ``djtasks.states``; the code lives in ``djtasks.core.states``."""

from djtasks.core.states import (
    FAILURE,
    PENDING,
    READY_STATES,
    RETRY,
    REVOKED,
    RUNNABLE,
    RUNNABLE_STATES,
    STARTED,
    SUCCESS,
    UNREADY_STATES,
    State,
    to_django_status,
)

__all__ = [
    "FAILURE",
    "PENDING",
    "READY_STATES",
    "RETRY",
    "REVOKED",
    "RUNNABLE",
    "RUNNABLE_STATES",
    "STARTED",
    "SUCCESS",
    "State",
    "UNREADY_STATES",
    "to_django_status",
]
