"""Celery's signals, with Celery's names and arguments, as django.dispatch Signals (public: djtasks.signals).

Connect receivers as in Celery (`@task_success.connect`, `task_prerun.connect(handler, sender=add)`);
a task name given as sender (`after_task_publish.connect(h, sender="proj.tasks.add")`) matches by
value, as in Celery (Django would compare strings by identity). Senders and arguments:

publish side (the process that calls delay/apply_async)
  before_task_publish  sender=task name; body=(args, kwargs, embed), exchange="", routing_key=queue,
                       headers (the message headers; keys a receiver adds are kept in the row's
                       headers), properties, declare=[], retry_policy=None. Sent before the row is
                       written, in the caller's transaction.
  after_task_publish   sender=task name; body, exchange="", routing_key=queue. Sent after the commit,
                       once the ids are handed to Redis (not for rows left to the outbox sweep).
worker child (where the task runs)
  task_received        sender=None; request. When a child has started the task's attempt.
  task_prerun          sender=task; task_id, task, args, kwargs. Just before the function runs.
  task_success         sender=task; result. After the outcome is committed.
  task_failure         sender=task; task_id, exception, args, kwargs, traceback, einfo.
  task_retry           sender=task; request, reason, einfo.
  task_postrun         sender=task; task_id, task, args, kwargs, retval, state. After the above.
  task_revoked         sender=task; request, terminated, signum, expired. A revoked or expired task
                       met by a child (a terminated one: in the worker parent, which killed it).
  task_unknown         sender=None; name, id, message, exc. A task name not registered here.
  task_rejected        sender=None; message, exc. A message set aside as malformed.
  worker_process_init / worker_process_shutdown (pid, exitcode): each child's start and end.
worker parent
  worker_init, worker_ready, worker_shutdown (sender=the worker), beat_init (sender=the beat).

A receiver that raises is logged and never changes a task's outcome nor stops a worker.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

from asgiref.sync import async_to_sync
from django.dispatch import Signal

logger = logging.getLogger("djtasks")


def _key(sender: Any) -> Any:
    # One object per name, so Django's identity match on senders matches names by value.
    return sys.intern(sender) if type(sender) is str else sender


class CelerySignal(Signal):
    """A django.dispatch Signal that matches task-name senders by value and never lets a receiver raise."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    def connect(self, receiver: Any = None, sender: Any = None, weak: bool = True, dispatch_uid: Any = None) -> Any:
        """Connect a receiver; used bare (@sig.connect) or with options (@sig.connect(sender=...)) as in Celery."""
        if receiver is None:
            return lambda func: self.connect(func, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
        super().connect(receiver, _key(sender), weak, dispatch_uid)
        return receiver

    def disconnect(self, receiver: Any = None, sender: Any = None, dispatch_uid: Any = None) -> bool:
        return super().disconnect(receiver, _key(sender), dispatch_uid)

    def listening(self) -> bool:
        """Cheap test for the hot path: False when nothing is connected at all."""
        return bool(self.receivers)

    def emit(self, sender: Any = None, **named: Any) -> list[tuple[Any, Any]]:
        """Send to every receiver (async ones too); one that raises anything is logged and the others still run."""
        if not self.receivers:
            return []
        sender = _key(sender)
        sync_receivers, async_receivers = self._live_receivers(sender)
        replies = []
        for receiver in [*sync_receivers, *(async_to_sync(r) for r in async_receivers)]:
            try:
                replies.append((receiver, receiver(signal=self, sender=sender, **named)))
            except BaseException as exc:  # noqa: BLE001 - a receiver must not change what it is told about
                logger.error(
                    "Receiver %s of signal %s raised %s; ignored",
                    getattr(receiver, "__qualname__", receiver),
                    self.name,
                    type(exc).__qualname__,
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
                replies.append((receiver, exc))
        return replies


before_task_publish = CelerySignal("before_task_publish")
after_task_publish = CelerySignal("after_task_publish")
task_received = CelerySignal("task_received")
task_prerun = CelerySignal("task_prerun")
task_postrun = CelerySignal("task_postrun")
task_success = CelerySignal("task_success")
task_failure = CelerySignal("task_failure")
task_retry = CelerySignal("task_retry")
task_revoked = CelerySignal("task_revoked")
task_unknown = CelerySignal("task_unknown")
task_rejected = CelerySignal("task_rejected")
worker_init = CelerySignal("worker_init")
worker_ready = CelerySignal("worker_ready")
worker_shutdown = CelerySignal("worker_shutdown")
worker_process_init = CelerySignal("worker_process_init")
worker_process_shutdown = CelerySignal("worker_process_shutdown")
beat_init = CelerySignal("beat_init")


_DJANGO_TASKS_LOG = logging.getLogger("django.tasks")


def django_listens(signal: Signal, own: object, level: int) -> bool:
    """Whether sending one of Django's task signals does anything: its own log line at this level, or another receiver.

    Django connects its own log receiver (`own`) to task_enqueued, task_started and task_finished,
    so has_listeners() is always true; building their TaskResult for a log line that is off is the
    cost this avoids. A receiver list of any unexpected shape (it is not public API) means send.
    """
    if _DJANGO_TASKS_LOG.isEnabledFor(level):
        return True
    for entry in signal.receivers:
        if not isinstance(entry, tuple) or len(entry) < 2:
            return True
        receiver = entry[1]
        if isinstance(receiver, weakref.ReferenceType):  # connected weakly (the default); None once collected
            receiver = receiver()
        if receiver is not None and receiver is not own:
            return True
    return False
