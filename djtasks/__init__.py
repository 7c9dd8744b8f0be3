"""djtasks: background tasks for Django, Celery's power with the database as the record.

Names are imported on first use so that `INSTALLED_APPS = ["djtasks"]` loads no models early.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what mypy sees of the lazy names below, so typed tasks stay typed
    from djtasks.calling.bulk import bulk as bulk
    from djtasks.calling.declaration import Task as Task
    from djtasks.calling.declaration import register_task as register_task
    from djtasks.calling.declaration import shared_task as shared_task
    from djtasks.calling.declaration import task as task
    from djtasks.calling.eager import EagerResult as EagerResult
    from djtasks.calling.groups import GroupResult as GroupResult
    from djtasks.calling.groups import result_from_tuple as result_from_tuple
    from djtasks.calling.result import AsyncResult as AsyncResult

__version__ = "0.1.0"

_EXPORTS = {
    "task": "djtasks.calling.declaration",
    "Task": "djtasks.calling.declaration",
    "AsyncResult": "djtasks.calling.result",
    "states": "djtasks.core.states",
    "TaskFailed": "djtasks.core.exceptions",
    "TaskRevoked": "djtasks.core.exceptions",
    "TimeoutError": "djtasks.core.exceptions",
    "ImproperlyDeclared": "djtasks.core.exceptions",
    "report_progress": "djtasks.calling.progress",
    "revoke": "djtasks.calling.revoke",
    "SoftTimeLimitExceeded": "djtasks.core.exceptions",
    "TimeLimitExceeded": "djtasks.core.exceptions",
    "current_task": "djtasks.core.context",
    "signature": "djtasks.calling.canvas",
    "Signature": "djtasks.calling.canvas",
    "chain": "djtasks.calling.canvas",
    "group": "djtasks.calling.canvas",
    "chord": "djtasks.calling.canvas",
    "chunks": "djtasks.calling.chunks",
    "send_task": "djtasks.calling.send",
    "GroupResult": "djtasks.calling.groups",
    "Retry": "djtasks.core.exceptions",
    "MaxRetriesExceededError": "djtasks.core.exceptions",
    "ChordError": "djtasks.core.exceptions",
    "set_rate_limit": "djtasks.calling.ratelimit",
    "shared_task": "djtasks.calling.declaration",
    "register_task": "djtasks.calling.declaration",
    "EagerResult": "djtasks.calling.eager",
    "result_from_tuple": "djtasks.calling.groups",
    "bulk": "djtasks.calling.bulk",
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
