"""HTML pieces of the task admin: state badges, JSON, progress bars, the timeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord


def pretty_json(value: Any) -> SafeString:
    return format_html('<pre class="djtasks-json">{}</pre>', json.dumps(value, indent=2, default=str))


def state_badge(record: TaskRecord) -> SafeString:
    reported = record.reported_state
    if reported is not None:  # a custom state the running task set with update_state()
        return format_html(
            '<span class="djtasks-badge djtasks-started djtasks-custom" title="{}">{}</span>',
            _("reported by the running task (update_state)"),
            reported[0],
        )
    state = "RUNNING" if record.is_running and record.state != "STARTED" else record.state
    label = _("Running") if state == "RUNNING" else record.get_state_display()
    return format_html('<span class="djtasks-badge djtasks-{}">{}</span>', state.lower(), label)


def task_name(record: TaskRecord) -> SafeString:
    """The task's name; a call's shadow= name first when it has one, the registered name beside it."""
    if record.shown_name == record.task_name:
        return format_html("{}", record.task_name)
    return format_html('{} <span class="quiet" title="{}">({})</span>', record.shown_name, _("task"), record.task_name)


def progress_bar(progress: dict[str, Any] | None) -> SafeString:
    if not isinstance(progress, dict):
        return SafeString("")
    percent = progress.get("percent")
    if not isinstance(percent, int | float):
        percent = 0.0
    percent = max(0.0, min(100.0, float(percent)))
    total = progress.get("total")
    count = f"{progress.get('current')}/{total}" if total else str(progress.get("current", ""))
    return format_html(
        '<div class="djtasks-progress" title="{}"><div class="djtasks-progress-bar" style="width:{}%"></div>'
        '<span class="djtasks-progress-label">{} · {}% {}</span></div>',
        progress.get("message", ""),
        f"{percent:.1f}",
        count,
        f"{percent:.0f}",
        progress.get("message", ""),
    )


def without_message(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    """Progress with its numbers only: the message is text the task wrote, and may quote a secret."""
    if not isinstance(progress, dict):
        return None
    return {k: v for k, v in progress.items() if k in ("current", "total", "percent") and isinstance(v, int | float)}


def moment(value: datetime | None) -> SafeString:
    """A compact local time for list columns (today: the time only); the full timestamp in the tooltip."""
    if value is None:
        return SafeString("-")
    local = timezone.localtime(value)
    short = local.strftime("%H:%M:%S" if local.date() == timezone.localdate() else "%Y-%m-%d %H:%M")
    return format_html(
        '<time class="djtasks-nowrap" datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.isoformat(sep=" ", timespec="milliseconds"),
        short,
    )


def waiting_note(text: str) -> SafeString:
    """What a waiting task waits for, under its state badge ("rate-limited until ...")."""
    return format_html('<div class="djtasks-waiting">{}</div>', text) if text else SafeString("")


def guarded[T](read: Callable[[], T], otherwise: T) -> T:
    """Read what only decorates a page from Redis; without Redis the page shows without it."""
    try:
        return read()
    except BrokerUnavailable:
        return otherwise


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def timeline(record: TaskRecord) -> SafeString:
    """Enqueued -> (run after) -> started -> finished, each step with the time since the previous."""
    steps: list[tuple[str, datetime]] = [(_("enqueued"), record.enqueued_at)]
    if record.eta:
        steps.append((_("run after"), record.eta))
    if record.started_at:
        steps.append((_("started"), record.started_at))
    if record.finished_at:
        steps.append((_("finished"), record.finished_at))
    rows = []
    previous: datetime | None = None
    for label, at in steps:
        gap = "" if previous is None else "+" + duration((at - previous).total_seconds())
        rows.append((label, at.isoformat(sep=" ", timespec="milliseconds"), gap))
        previous = at
    return format_html(
        '<ol class="djtasks-timeline">{}</ol>',
        format_html_join("", '<li><strong>{}</strong> <time>{}</time> <span class="quiet">{}</span></li>', rows),
    )
