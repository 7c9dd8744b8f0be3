"""Task.replace(sig): the running task's row becomes the replacement's call, keeping its id and its workflow.

As in Celery, the replacement inherits the task id: whoever waits on it gets the replacement's
result, and the task's links, error links, chain and chord membership move to the replacement.
djtasks does it by rewriting the row (fenced by the attempt's lease token) and sending it back to
a queue, so a row holds one task: a chain, group or chord cannot replace a task.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from djtasks.calling.canvas import Signature
from djtasks.calling.enqueue import Defaults, check_json, checked_workflow, route
from djtasks.calling.retry import current_request
from djtasks.core import registry
from djtasks.core.exceptions import DjtasksError, InvalidCall
from djtasks.core.options import ExecutionOptions, check_name
from djtasks.core.spec import TaskDefaults
from djtasks.record.models import TaskRecord

NESTING = "replaced_task_nesting"  # Celery's header: how many replacements led to this call


class Replaced(DjtasksError):
    """Raised by task.replace() in a worker: the attempt ends and its row becomes the replacement's call."""

    def __init__(self, sig: Signature):
        super().__init__(f"replaced by {sig!r}")
        self.sig = sig


def replace(task: Any, sig: Any) -> Any:
    """Replace the running task with sig; inline (called directly or by apply()) return sig's value instead."""
    if not isinstance(sig, Signature):
        raise InvalidCall(
            f"{task.registered_name}.replace() takes the signature of one task, not {type(sig).__name__}: djtasks "
            "replaces a task by rewriting its row, which holds one call. Enqueue the workflow and return, "
            "or replace with a task that runs it."
        )
    if "chord" in sig.options:
        raise InvalidCall("A signature replacing a task must not be part of a chord.")
    request = current_request(task.registered_name)
    if request.is_eager:  # apply(): the replacement runs inline too, as in Celery
        return registry.lookup(sig.task).apply(sig.args, sig.kwargs).get()  # type: ignore[attr-defined]
    if request.called_directly:
        return sig()
    raise Replaced(sig)


def rewrite(record: TaskRecord, sig: Signature) -> dict[str, Any]:
    """Return the row fields of the replacement's call (checked as apply_async checks a call)."""
    target: TaskDefaults = registry.get(sig.task) or Defaults(registered_name=check_name("task name", sig.task, 255))  # type: ignore[assignment]
    options = ExecutionOptions.build(**sig.options)
    args, kwargs = check_json(target.registered_name, list(sig.args), dict(sig.kwargs))
    canvas = dict(record.canvas or {})
    for key in ("link", "link_error"):
        added = checked_workflow(target.registered_name, options).get(key, [])
        if added:
            canvas[key] = [*canvas.get(key, []), *added]
    headers = {**(record.headers or {}), **options.headers}
    headers[NESTING] = int((record.headers or {}).get(NESTING) or 0) + 1
    history = list((record.options or {}).get("replaced", []))
    history.append({"task": record.task_name, "args": record.args, "kwargs": record.kwargs, "attempt": record.attempts})
    priority = target.priority if options.priority is None else options.priority
    if type(priority) is not int or not -100 <= priority <= 100:
        raise InvalidCall(f"priority must be a whole number between -100 and 100, not {priority!r}.")
    return {
        "task_name": check_name("task name", target.registered_name, 255),
        "args": args,
        "kwargs": kwargs,
        "queue": options.queue or route(target.registered_name) or target.queue_name,
        "priority": priority,
        "eta": options.eta or timezone.now(),
        "headers": headers,
        "canvas": canvas,
        "options": {**options.stored(), "replaced": history},
        "ignore_result": target.ignore_result if options.ignore_result is None else options.ignore_result,
        "retries": 0,
    }
