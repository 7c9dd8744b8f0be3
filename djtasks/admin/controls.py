"""The fleet's controls: each a POST with its own permission, CSRF (the admin's), a reply shown, an audit entry.

Workers are told through djtasks.control (the worker answers, or "no reply within N s" is
shown); queue pauses and limits change Redis for every worker; a purge revokes the queue's
waiting rows in the database (REVOKED, with who purged them in exception_message) and takes
their ids out of Redis. Input is checked first; a bad value is a message, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import batched

from django.contrib import messages
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from djtasks.admin.audit import audit
from djtasks.calling.overrides import clear_time_limit
from djtasks.core import registry
from djtasks.core.conf import get_settings
from djtasks.core.names import queue_name_error
from djtasks.core.states import REVOKED
from djtasks.ops import control
from djtasks.record.models import TaskRecord
from djtasks.record.revocation import REVOKED_TYPE
from djtasks.transport.broker import get_broker
from djtasks.transport.telemetry import Recorder

PURGE_BATCH = 500


class Invalid(ValueError):
    """A control's input is not usable; the message says what to give."""


@dataclass(frozen=True)
class Control:
    permission: str  # the codename, in the djtasks app
    what: str  # what the audit entry says was acted on: "worker", "queue", "task"
    run: Callable[[HttpRequest], tuple[str, list[tuple[int, str]]]]  # -> (target, [(level, message)])


REPLY_TIMEOUT = 2.0


def _field(request: HttpRequest, name: str) -> str:
    value = request.POST.get(name, "").strip()
    if not value:
        raise Invalid(f"{name} is missing")
    return value


def _worker(request: HttpRequest) -> str:
    worker = _field(request, "worker")
    if worker not in control.workers():
        raise Invalid(f"worker {worker!r} is not online")
    return worker


def _queue(request: HttpRequest) -> str:
    queue = _field(request, "queue")
    if error := queue_name_error(queue):
        raise Invalid(error)
    return queue


def _task(request: HttpRequest) -> str:
    name = _field(request, "task")
    if registry.get(name) is None:
        raise Invalid(f"{name!r} is not a registered task")
    return name


def _count(request: HttpRequest) -> int:
    text = request.POST.get("n", "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise Invalid(f"the number of children is a whole number from 1 to 1024, not {text!r}")
    return int(text)


def _replies(replies: list[control.Reply]) -> list[tuple[int, str]]:
    if not replies:
        return [(messages.WARNING, "no worker is online: the change waits in Redis for them")]
    return [
        (messages.SUCCESS, f"{r.worker}: {r.data}") if r.ok else (messages.ERROR, f"{r.worker}: {r.error}")
        for r in replies
    ]


def _to_worker(command: str, *args: object) -> Callable[[HttpRequest], tuple[str, list[tuple[int, str]]]]:
    def run(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
        worker = _worker(request)
        given = [reader(request) for reader in args]  # type: ignore[operator]
        send = getattr(control, command)
        return worker, _replies(send(*given, destination=[worker], timeout=REPLY_TIMEOUT))

    return run


def pause(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
    queue = _queue(request)
    done = get_broker().pause_queue(queue, f"paused by {request.user} in the admin")
    return queue, [
        (messages.SUCCESS, f"queue {queue} paused: no worker takes its tasks until it is resumed")
    ] if done else [(messages.WARNING, f"queue {queue} was paused already")]


def resume(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
    queue = _queue(request)
    done = get_broker().resume_queue(queue)
    return queue, [(messages.SUCCESS, f"queue {queue} resumed")] if done else [
        (messages.WARNING, f"queue {queue} was not paused")
    ]


def purge(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
    """Revoke every waiting task of a queue (rows kept, REVOKED with the reason), then take their ids out of Redis."""
    queue = _queue(request)
    if request.POST.get("confirm") != "yes":
        raise Invalid("a purge needs its confirmation")
    db, now = router.db_for_write(TaskRecord), timezone.now()
    reason = f"purged from queue {queue} by {request.user} in the admin"
    waiting = TaskRecord.objects.using(db).filter(queue=queue).unclaimed()
    revoked: list[tuple[str, str]] = []
    for batch in batched(waiting.values_list("pk", flat=True).iterator(), PURGE_BATCH):
        with transaction.atomic(using=db):
            rows = list(waiting.filter(pk__in=batch).select_for_update().values_list("pk", "task_name"))
            TaskRecord.objects.using(db).filter(pk__in=[pk for pk, _ in rows]).update(
                state=REVOKED, finished_at=now, exception_type=REVOKED_TYPE, exception_message=reason
            )
        revoked += rows
        _forget(queue, rows, reason)
    return queue, [(messages.SUCCESS, f"queue {queue} purged: {len(revoked)} waiting task(s) revoked ({reason})")]


def _forget(queue: str, rows: list[tuple[str, str]], reason: str) -> None:
    broker = get_broker()
    broker.forget_many(queue, [pk for pk, _ in rows])
    recorder = Recorder(broker, get_settings(), "")
    for pk, name in rows:
        recorder.revoked(pk, name, queue, reason)
    recorder.flush()


def rate_limit(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
    task = _task(request)
    rate = "none" if request.POST.get("reset") else _field(request, "rate")
    try:
        replies = control.rate_limit(task, rate, timeout=REPLY_TIMEOUT)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    said = "reset to its declared rate" if rate == "none" else f"set to {rate}"
    return task, [(messages.SUCCESS, f"{task}: rate limit {said} for every worker"), *_replies(replies)]


def time_limit(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
    task = _task(request)
    if request.POST.get("reset"):
        clear_time_limit(task)
        return task, [(messages.SUCCESS, f"{task}: time limits reset to the declared ones (or the settings')")]
    soft, hard = request.POST.get("soft", "").strip(), request.POST.get("hard", "").strip()
    try:
        replies = control.time_limit(task, soft or None, hard or None, timeout=REPLY_TIMEOUT)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    shown = f"soft {soft or 'none'}, hard {hard or 'none'}"
    return task, [(messages.SUCCESS, f"{task}: time limits set to {shown} for every worker"), *_replies(replies)]


def run_now(request: HttpRequest) -> tuple[str, list[tuple[int, str]]]:
    ids = [pk for pk in request.POST.getlist("task_id") if pk]
    if not ids:
        raise Invalid("no task selected")
    moved = run_tasks_now(TaskRecord.objects.filter(pk__in=ids))
    return ", ".join(ids)[:200], [(messages.SUCCESS, f"{moved} of {len(ids)} task(s) made due now")]


def run_tasks_now(rows: QuerySet[TaskRecord]) -> int:
    """Make waiting tasks (PENDING or RETRY, not held) due now: their eta, then their place in Redis.

    A rate limit still applies: a task over its limit is put back until its slot.
    """
    db, now = router.db_for_write(TaskRecord), timezone.now()
    waiting = list(TaskRecord.objects.using(db).filter(pk__in=rows.values("pk")).unclaimed().values_list("pk", "queue"))
    TaskRecord.objects.using(db).filter(pk__in=[pk for pk, _ in waiting]).unclaimed().update(eta=now)
    by_queue: dict[str, list[str]] = {}
    for pk, queue in waiting:
        by_queue.setdefault(queue, []).append(pk)
    for queue, pks in by_queue.items():
        get_broker().due_now(queue, pks)
    return len(waiting)


CONTROLS: dict[str, Control] = {
    "shutdown": Control("shutdown_worker", "worker", _to_worker("shutdown")),
    "pool_grow": Control("resize_pool", "worker", _to_worker("pool_grow", _count)),
    "pool_shrink": Control("resize_pool", "worker", _to_worker("pool_shrink", _count)),
    "add_consumer": Control("manage_consumers", "worker", _to_worker("add_consumer", _queue)),
    "cancel_consumer": Control("manage_consumers", "worker", _to_worker("cancel_consumer", _queue)),
    "pause": Control("pause_queue", "queue", pause),
    "resume": Control("pause_queue", "queue", resume),
    "purge": Control("purge_queue", "queue", purge),
    "rate_limit": Control("change_rate_limit", "task", rate_limit),
    "time_limit": Control("change_time_limit", "task", time_limit),
    "run_now": Control("run_task_now", "tasks", run_now),
}


def carry_out(request: HttpRequest, name: str) -> None:
    """Run a control the user may run (checked by the caller); show its outcome; log it."""
    chosen = CONTROLS[name]
    try:
        target, outcome = chosen.run(request)
    except Invalid as exc:
        messages.error(request, f"{name}: {exc}; nothing was changed")
        return
    for level, text in outcome:
        messages.add_message(request, level, text)
    audit(request, chosen.what, target, f"{name}: " + "; ".join(text for _, text in outcome))
