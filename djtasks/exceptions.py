"""Public import path ``djtasks.exceptions``; the code lives in ``djtasks.core.exceptions``."""

from djtasks.core.exceptions import (
    BrokerUnavailable,
    ChordError,
    DjtasksError,
    ImproperlyDeclared,
    MaxRetriesExceededError,
    MessageRejected,
    NotRegistered,
    ResultTimeout,
    Retry,
    SoftTimeLimitExceeded,
    TaskFailed,
    TaskRevoked,
    Terminated,
    TimeLimitExceeded,
    TimeoutError,
    WorkerLost,
)

__all__ = [
    "BrokerUnavailable",
    "ChordError",
    "DjtasksError",
    "ImproperlyDeclared",
    "MaxRetriesExceededError",
    "MessageRejected",
    "NotRegistered",
    "ResultTimeout",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskFailed",
    "TaskRevoked",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLost",
]
