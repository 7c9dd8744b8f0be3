"""What one admin user may see of task data: all of it with view_task_arguments, else redacted.

Redacted means: values under secret-looking keys masked in arguments, results, progress and
errors; exception messages, tracebacks, progress messages and dead-letter reasons with every such
value masked wherever it occurs; a dead letter's raw message masked by key, or cut at its first
secret-looking key when it is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import JSONField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest

from djtasks.core.conf import get_settings
from djtasks.core.redact import Redactor
from djtasks.record.models import DeadLetter, TaskRecord

VIEW_ARGUMENTS = "djtasks.view_task_arguments"
# Columns holding task data: a user without VIEW_ARGUMENTS may not filter or search on them.
DATA_FIELDS = frozenset(
    {"args", "kwargs", "result", "exception_message", "traceback", "errors", "progress", "headers", "canvas"}
    | {"options", "reported"}
    | {"keys", "unique_lock"}  # unique, rate-limit and concurrency keys are computed from the arguments
    | {"raw", "reason"}
)


def may_see_secrets(request: HttpRequest) -> bool:
    return request.user.has_perm(VIEW_ARGUMENTS)


class Shown:
    """Task data as one user may see it, for the secrets found in one task's data."""

    def __init__(self, open_: bool, *data: Any):
        self.open = open_
        self.redactor = Redactor.of(get_settings().REDACT_KEYS, *data)

    def data(self, value: Any) -> Any:
        return value if self.open else self.redactor.data(value)

    def text(self, value: str) -> str:
        return value if self.open else self.redactor.text(value)

    def raw(self, value: str) -> str:
        return value if self.open else self.redactor.raw(value)


def for_task(open_: bool, record: TaskRecord) -> Shown:
    """A task's secrets: those in its arguments, result, progress and headers."""
    return Shown(
        open_,
        record.args,
        record.kwargs,
        record.result,
        record.progress,
        record.headers,
        record.options,
        record.reported,
    )


def for_letter(open_: bool, letter: DeadLetter) -> Shown:
    """A dead letter's secrets: those of its raw message and of its task row (see with_calls)."""
    return Shown(
        open_,
        _json_or_none(letter.raw),
        getattr(letter, "row_args", None),
        getattr(letter, "row_kwargs", None),
    )


def with_calls(letters: QuerySet[DeadLetter]) -> QuerySet[DeadLetter]:
    """Dead letters with their task row's arguments, in the same query, to redact their reasons."""
    rows = TaskRecord.objects.filter(pk=OuterRef("task_id"))
    return letters.annotate(
        row_args=Subquery(rows.values("args")[:1], output_field=JSONField()),
        row_kwargs=Subquery(rows.values("kwargs")[:1], output_field=JSONField()),
    )


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
