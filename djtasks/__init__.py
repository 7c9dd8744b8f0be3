"""djtasks: background tasks for Django, Celery's power with the database as the record.

Names are imported on first use so that `INSTALLED_APPS = ["djtasks"]` loads no models early.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "task": "djtasks.declaration",
    "Task": "djtasks.declaration",
    "AsyncResult": "djtasks.result",
    "states": "djtasks.states",
    "TaskFailed": "djtasks.exceptions",
    "TaskRevoked": "djtasks.exceptions",
    "TimeoutError": "djtasks.exceptions",
    "ImproperlyDeclared": "djtasks.exceptions",
    "report_progress": "djtasks.progress",
    "revoke": "djtasks.revocation",
    "SoftTimeLimitExceeded": "djtasks.exceptions",
    "TimeLimitExceeded": "djtasks.exceptions",
    "current_task": "djtasks.context",
    "signature": "djtasks.canvas",
    "Signature": "djtasks.canvas",
    "chain": "djtasks.canvas",
    "group": "djtasks.canvas",
    "chord": "djtasks.canvas",
    "chunks": "djtasks.canvas",
    "send_task": "djtasks.canvas",
    "GroupResult": "djtasks.result",
    "Retry": "djtasks.exceptions",
    "MaxRetriesExceededError": "djtasks.exceptions",
    "ChordError": "djtasks.exceptions",
    "set_rate_limit": "djtasks.ratelimit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'djtasks' has no attribute {name!r}")
    attribute = {"current_task": "current", "chunks": "Chunks"}.get(name, name)
    value = getattr(import_module(module), attribute) if name != "states" else import_module(module)
    globals()[name] = value
    return value
