"""One task as the monitor shows it, read from its row: redacted as the admin shows it to a user
without djtasks.view_task_arguments.

Arguments, result and progress go through core.redact's Redactor with REDACT_KEYS, so a value
under a key such as "password" reads ********. The exception message and traceback are text the
task wrote, so they may quote such a value: the Redactor masks it there too, by the same rule as
the admin (a very short secret withholds the whole text).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import DatabaseError, close_old_connections

from djtasks.core.conf import get_settings
from djtasks.core.redact import MASK, Redactor
from djtasks.ops.top.board import printable, reason, task_id_of
from djtasks.record.models import TaskRecord

MAX_FIELD = 20_000  # characters of one field shown (a traceback can be long)


def describe(task_id: str) -> str:
    """Return the task's row as text for the screen; a missing or unreadable row says so."""
    if task_id_of(task_id) is None:
        return f"{printable(task_id)} cannot be a task id."
    try:
        close_old_connections()
        record = TaskRecord.objects.filter(pk=task_id).first()
    except DatabaseError as exc:
        return f"Could not read task {printable(task_id)}: {reason(exc, 500)}"
    if record is None:
        return f"No row for task {printable(task_id)}: it was deleted, or its result expired."
    return text_of(record, tuple(get_settings().REDACT_KEYS))


def text_of(record: TaskRecord, patterns: tuple[str, ...]) -> str:
    hidden = Redactor.of(patterns, record.args, record.kwargs, record.result, record.progress)
    runtime = f"{record.runtime:.3f} s" if record.runtime is not None else "-"
    fields = [
        ("task", record.task_name),
        ("id", record.id),
        ("state", record.state + (" (running)" if record.is_running else "")),
        ("queue", f"{record.queue}   priority {record.priority}"),
        ("worker", record.worker or "-"),
        ("attempts", f"{record.attempts}   retries {record.retries}"),
        ("enqueued", _moment(record.enqueued_at)),
        ("eta", _moment(record.eta)),
        ("started", _moment(record.started_at)),
        ("finished", f"{_moment(record.finished_at)}   runtime {runtime}"),
        ("args", _json(hidden.data(record.args))),
        ("kwargs", _json(hidden.data(record.kwargs))),
        ("result", _json(hidden.data(record.result))),
    ]
    if record.progress is not None:
        fields.append(("progress", _json(hidden.data(record.progress))))
    if record.exception_type or record.exception_message:
        fields.append(("exception", hidden.text(f"{record.exception_type}: {record.exception_message}")))
    if record.traceback:
        fields.append(("traceback", hidden.text(record.traceback)))
    lines = []
    for label, value in fields:
        body = [printable(line, MAX_FIELD) for line in value[:MAX_FIELD].splitlines() or [""]]
        if len(value) > MAX_FIELD:
            body.append(f"(… {len(value) - MAX_FIELD} more characters)")
        lines.append(f"{label:<10}{body[0]}")
        lines += [" " * 10 + line for line in body[1:]]
    keys = ", ".join(patterns)
    lines += ["", f"Values under keys containing {keys} are shown as {MASK}, as the admin shows them"]
    lines.append("to a user without the view_task_arguments permission.")
    return "\n".join(lines)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def _moment(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="milliseconds") if value is not None else "-"
