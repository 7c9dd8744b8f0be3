"""Enqueue: write the task row inside the caller's transaction; publishing follows the commit."""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import router
from django.tasks import DEFAULT_TASK_QUEUE_NAME, task_backends
from django.tasks import Task as DjangoTask
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
from django.tasks.signals import log_task_enqueued, task_enqueued

from djtasks.calling import inline, publishing, unique
from djtasks.calling.gates import ENQUEUE
from djtasks.calling.signals import django_listens
from djtasks.calling.taskoptions import signature_of
from djtasks.core import registry
from djtasks.core.conf import get_settings
from djtasks.core.context import current
from djtasks.core.exceptions import InvalidCall
from djtasks.core.ids import new_id
from djtasks.core.logs import escape
from djtasks.core.options import ID_LENGTH, QUEUE_LENGTH, ExecutionOptions, check_name
from djtasks.core.spec import TaskDefaults
from djtasks.core.values import Unstorable, plain
from djtasks.record import inserts, rows
from djtasks.record.convert import to_task_result
from djtasks.record.models import TaskRecord

BACKEND_PATH = "djtasks.backend.RedisBackend"


def djtasks_backend_alias() -> str:
    """Return the TASKS alias that uses the djtasks backend ("default" if none does)."""
    for alias, params in getattr(settings, "TASKS", {}).items():
        if params.get("BACKEND") == BACKEND_PATH:
            return alias
    return "default"


@dataclass(frozen=True, slots=True)
class Defaults:
    """The declaration of a task known only by its name (send_task): a TaskDefaults with no options."""

    registered_name: str
    queue_name: str = DEFAULT_TASK_QUEUE_NAME
    priority: int = 0
    backend: str = "default"
    ignore_result: bool = False
    expires: float | None = None
    run_after: datetime | None = None


# Backend alias -> the class of its backend (task_enqueued's sender), for the TASKS settings in force
# (Django's task_backends.settings, which setting_changed replaces).
_BACKENDS: dict[str, type] = {}
_BACKENDS_UNDER: list[Any] = [None]


def backend_class(task: DjangoTask) -> type:
    """Return type(task.get_backend()), which builds the backend through an asgiref Local at every call."""
    conf = task_backends.settings
    if _BACKENDS_UNDER[0] is not conf:
        _BACKENDS.clear()
        _BACKENDS_UNDER[0] = conf
    found = _BACKENDS.get(task.backend)
    if found is None:
        found = _BACKENDS[task.backend] = type(task.get_backend())
    return found


def route(name: str) -> str | None:
    """Return the queue the ROUTES setting gives a task name (exact names first, then globs)."""
    return _route(get_settings().ROUTES, name)


def _route(routes: dict[str, Any], name: str) -> str | None:
    target = routes.get(name)
    if target is None:
        target = next((q for pattern, q in routes.items() if fnmatch.fnmatchcase(name, pattern)), None)
    if isinstance(target, dict):
        target = target.get("queue")
    return target


# (task name, declared queue) -> (the checked name, the queue a call without queue= goes to), for
# the settings object they were resolved under (get_settings() is a new one after setting_changed).
_RESOLVED: dict[tuple[str, str], tuple[str, str]] = {}
_RESOLVED_UNDER: list[Any] = [None]


def resolve(task: TaskDefaults, options: ExecutionOptions) -> tuple[str, str]:
    """Return the call's (task name, queue): options.queue, else ROUTES, else the declared queue (checked)."""
    if options.queue:
        return check_name("task name", task.registered_name, ID_LENGTH), check_name(
            "queue name", options.queue, QUEUE_LENGTH
        )
    conf = get_settings()
    if _RESOLVED_UNDER[0] is not conf:
        _RESOLVED.clear()
        _RESOLVED_UNDER[0] = conf
    key = (task.registered_name, task.queue_name)
    if type(key[0]) is not str or type(key[1]) is not str:  # refused below, and not a key
        return _resolve(conf, task)
    resolved = _RESOLVED.get(key)
    if resolved is None:
        resolved = _resolve(conf, task)
        if len(_RESOLVED) < 10_000:  # names come from declarations, or from send_task's callers
            _RESOLVED[key] = resolved
    return resolved


def _resolve(conf: Any, task: TaskDefaults) -> tuple[str, str]:
    name = check_name("task name", task.registered_name, ID_LENGTH)
    declared = task.queue_name
    if declared == DEFAULT_TASK_QUEUE_NAME:  # Django's "default": DEFAULT_QUEUE (Celery's task_default_queue)
        declared = conf.DEFAULT_QUEUE
    return name, check_name("queue name", _route(conf.ROUTES, name) or declared, QUEUE_LENGTH)


def check_json(name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Return plain copies of the arguments (core/values.py); raise InvalidCall naming one that cannot be stored."""
    try:
        checked = plain(args, "args")
        if not isinstance(kwargs, dict):
            raise Unstorable("kwargs", "is not a dict", wrong_type=True)
        return checked, plain(kwargs, "kwargs")
    except Unstorable as exc:
        what = "is not JSON-serializable" if exc.wrong_type else "cannot be stored"
        raise InvalidCall(
            f"Argument {exc.path} of task {escape(name)} {what}: it {exc.problem}. "
            "Pass plain data such as ids, strings and numbers. Nothing was enqueued."
        ) from None


def workflow(options: ExecutionOptions) -> dict[str, Any]:
    """Return the row's canvas field: where this call sits in a chain, a chord, and its callbacks."""
    canvas: dict[str, Any] = {}
    for key in ("link", "link_error", "chain"):
        if getattr(options, key):
            canvas[key] = list(getattr(options, key))
    if options.chord:
        canvas["chord"] = options.chord
    return canvas


def checked_workflow(name: str, options: ExecutionOptions) -> dict[str, Any]:
    """Return the canvas field in plain JSON; raise InvalidCall if a signature in it cannot be stored."""
    if not (options.link or options.link_error or options.chain or options.chord):
        return {}
    try:
        canvas = plain(workflow(options), "options")
    except Unstorable as exc:
        raise InvalidCall(f"The {exc.path} of a call of {escape(name)} cannot be stored: it {exc.problem}.") from None
    for errback in canvas.get("link_error", ()):
        check_errback(errback)
    return canvas


NEW_STYLE_ERRBACK = ["request", "exc", "traceback"]


def check_errback(errback: Any) -> None:
    """Refuse Celery's new-style errback (request, exc, traceback): djtasks applies it with the failed task's id."""
    target = registry.get(errback.get("task", "")) if isinstance(errback, dict) else None
    func = getattr(target, "func", None)
    if func is None:
        return
    try:
        names = list(signature_of(func).parameters)[int(bool(getattr(target, "bind", False))) :]
    except (TypeError, ValueError):
        return
    if names[:3] == NEW_STYLE_ERRBACK:
        raise InvalidCall(
            f"The errback {escape(errback['task'])}(request, exc, traceback) is Celery's new-style errback, which "
            "djtasks does not run: it applies an errback with the failed task's id as its first argument (Celery's "
            "old style). Declare it as def errback(task_id) and read the error with AsyncResult(task_id).result."
        )


def lineage(options: ExecutionOptions, task_id: str) -> tuple[str, str]:
    """Return (parent_id, root_id): the canvas's, else the running task's, as Celery sets them."""
    parent_id, root_id = options.parent_id, options.root_id
    running = current()
    if running is not None and not parent_id:
        record = getattr(running, "record", None)
        parent_id = running.id
        root_id = root_id or (getattr(record, "root_id", "") or running.id)
    return parent_id, root_id or task_id


def enqueue(
    task: TaskDefaults,
    args: list[Any],
    kwargs: dict[str, Any],
    options: ExecutionOptions,
    once: unique.UniqueCall | None = None,
    *,
    checked: bool = False,
) -> TaskRecord:
    """Insert the row (state PENDING) in the current transaction and return it.

    A call made inside a running task is its child (parent_id, root_id), as in Celery. checked:
    the arguments are check_json()'s copies already. For a unique or debounced task (or a call with
    its own unique_key/unique_for: `once`), return instead the row that holds its key, if one does
    (calling/unique.py): no row is written then.
    """
    name, values = row_values(task, args, kwargs, options, checked=checked)
    return write(task, name, values, options, once)


def row_values(
    task: TaskDefaults, args: list[Any], kwargs: dict[str, Any], options: ExecutionOptions, *, checked: bool
) -> tuple[str, dict[str, Any]]:
    """The call's checked task name and the values of its new row (new_record's keywords); raise InvalidCall."""
    if not checked:
        args, kwargs = check_json(task.registered_name, args, kwargs)
    name, queue = resolve(task, options)
    priority = task.priority if options.priority is None else options.priority
    if type(priority) is not int or not TASK_MIN_PRIORITY <= priority <= TASK_MAX_PRIORITY:
        raise InvalidCall(f"priority must be a whole number between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}.")
    task_id = options.task_id or new_id()
    expires = options.expires
    if expires is None and task.expires is not None:
        expires = ExecutionOptions.build(expires=task.expires).expires
    parent_id, root_id = lineage(options, task_id)
    return name, {
        "id": task_id,
        "task_name": name,
        "queue": queue,
        "priority": priority,
        "backend": task.backend,
        "args": args,
        "kwargs": kwargs,
        "eta": options.eta or task.run_after,
        "expires_at": expires,
        "ignore_result": task.ignore_result if options.ignore_result is None else options.ignore_result,
        "headers": dict(options.headers),
        "canvas": checked_workflow(name, options),
        "parent_id": parent_id,
        "root_id": root_id,
        "group_id": options.group_id,
        "retries": options.retries,
        "options": options.stored(),
    }


def write(
    task: TaskDefaults, name: str, values: dict[str, Any], options: ExecutionOptions, once: unique.UniqueCall | None
) -> TaskRecord:
    """enqueue()'s write of the row row_values() gave, with its signals; return the row (or its key's holder)."""
    record = rows.new_record(**values)
    record.publish_retry = options.publish_retry
    db = router.db_for_write(TaskRecord)
    gate = ENQUEUE.get(name)
    if options.chain:
        unique.check_chain(options)  # a unique step ends a chain: refused unless it is the last
    publishing.before(record)  # Celery's before_task_publish (its receivers may add headers)
    # post_save (publisher.on_task_saved) registers the publish on this database's commit.
    if gate is None and once is None:
        inserts.insert(record, db, deferrable=True)
    else:
        # Unique, debounced and keyed tasks: their keys, then the row, or its key's holder (no row written).
        unique.prepare(name, gate, once, record, options)
        if record.unique_lock is None:
            inserts.insert(record, db)
        elif (held := unique.take(record, db, debounced=gate is not None and gate.debounce is not None)) is not record:
            return held
    # Django's receivers get a TaskResult, which only a declared task builds (send_task's Defaults cannot).
    if isinstance(task, DjangoTask) and django_listens(task_enqueued, log_task_enqueued, logging.DEBUG):
        task_enqueued.send(backend_class(task), task_result=to_task_result(record, task))
    if inline.eager():  # instead of the publish: run here once the transaction commits
        inline.schedule(record.id, db)
    return record
