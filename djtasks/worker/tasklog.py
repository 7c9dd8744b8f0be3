"""The worker's log lines about tasks, in Celery's words.

    Task myapp.tasks.add[3f1c...] received
    Task myapp.tasks.add[3f1c...] succeeded in 0.004s: 8
    Task myapp.tasks.add[3f1c...] failed: ValueError('bad value')      (ERROR, then the traceback)
    Task myapp.tasks.add[3f1c...] retry: Retry in 10s: ConnectionError('down')

Values are shown as the admin shows them to a user without djtasks.view_task_arguments: values
under secret-looking keys are masked, and so is any of them quoted in a message or traceback.
A result is shown as a shortened repr. A call's shadow= name is the one shown, as in Celery.
Nothing is built unless its level is enabled.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from djtasks.core.conf import get_settings
from djtasks.core.redact import Redactor
from djtasks.core.states import FAILURE, RETRY, SUCCESS

if TYPE_CHECKING:
    from djtasks.worker.outcome import Outcome, Started

logger = logging.getLogger("djtasks")
RESULT_REPR = 1024  # characters of a result shown, as Celery's resultrepr_maxsize
_repr = reprlib.Repr(maxlevel=6, maxdict=20, maxlist=20, maxtuple=20, maxset=20, maxstring=400, maxother=200)


def received(items: Iterable[Started]) -> None:
    """Log the tasks a child has just started (Celery logs them as the worker receives them)."""
    if logger.isEnabledFor(logging.INFO):
        for item in items:
            logger.info("Task %s[%s] received", item.record.shown_name, item.claim.id)


def finished(started: Started, outcome: Outcome) -> None:
    """Log how an attempt ended, once its outcome is written."""
    state = outcome.state
    if state == FAILURE:
        # An error declared in throws= was logged "raised expected" at INFO, without a traceback, as in Celery.
        if logger.isEnabledFor(logging.ERROR) and not outcome.expected:
            _failed(started, outcome)
    elif logger.isEnabledFor(logging.INFO):
        if state == SUCCESS:
            _succeeded(started, outcome)
        elif state == RETRY and outcome.rewrite is None:  # replace() is not a retry
            _retrying(started, outcome)


def _redactor(started: Started, *data: Any) -> Redactor:
    record = started.record
    return Redactor.of(get_settings().REDACT_KEYS, record.args, record.kwargs, record.headers, *data)


def _succeeded(started: Started, outcome: Outcome) -> None:
    value = outcome.returned
    shown = shorten(_repr.repr(_redactor(started, value).data(value)))
    logger.info(
        "Task %s[%s] succeeded in %ss: %s",
        started.record.shown_name,
        started.claim.id,
        runtime(started, outcome),
        shown,
    )


def _failed(started: Started, outcome: Outcome) -> None:
    redactor = _redactor(started)
    logger.error(
        "Task %s[%s] failed: %s",
        started.record.shown_name,
        started.claim.id,
        redactor.text(exception_text(outcome)),
        # The stored traceback, redacted: written below the line (indented) by core.logs' filter.
        extra={"traceback_text": redactor.text(outcome.traceback)} if outcome.traceback else None,
    )


def _retrying(started: Started, outcome: Outcome) -> None:
    when = ""
    if outcome.eta is not None and outcome.finished_at is not None:
        when = f" in {round(max((outcome.eta - outcome.finished_at).total_seconds(), 0.0), 1):g}s"
    reason = _redactor(started).text(exception_text(outcome)) if outcome.exception_type else "retry requested"
    logger.info("Task %s[%s] retry: Retry%s: %s", started.record.shown_name, started.claim.id, when, reason)


def exception_text(outcome: Outcome) -> str:
    """Say what was raised as Celery does: ValueError('bad value')."""
    name = outcome.exception_type.rpartition(".")[2] or "Exception"
    return f"{name}({shorten(outcome.message)!r})"


def runtime(started: Started, outcome: Outcome) -> str:
    if outcome.finished_at is None:
        return "?"
    seconds = max((outcome.finished_at - started.started_at).total_seconds(), 0.0)
    return f"{seconds:.3f}" if seconds >= 0.001 else f"{seconds:.6f}"


def shorten(text: str, limit: int = RESULT_REPR) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
