"""What the admin shows of unique, debounced, keyed rate-limited and capped tasks.

The detail page: a row's unique or debounce key, its window, whether it holds the key now, how
many enqueues returned it instead of a new row, and its rate-limit and concurrency keys. The
dashboard: per declared task, its rate buckets and caps by key, read from Redis. Keys come from
task arguments, so a user without djtasks.view_task_arguments sees each key as a short digest
(equal keys, equal digests) rather than its text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from djtasks.admin import display
from djtasks.calling.declaration import Task
from djtasks.calling.gates import START
from djtasks.calling.unique import active, waiting
from djtasks.core import registry
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.transport.limits import KeyState

SHOWN_TASKS = 20


def shown_key(key: str, open_: bool) -> str:
    """The key as this user may see it: its text, or a digest that tells equal keys apart from others."""
    if open_ or key.startswith(("args:", "sha256:")):
        return key
    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _when(value: Any) -> str:
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if not isinstance(moment, datetime) or timezone.is_naive(moment):
        return "-"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def detail_rows(record: TaskRecord, open_: bool) -> list[tuple[str, str]]:
    """The rows of the detail page's "Keys" box (empty for a task without these options)."""
    keys = record.keys if isinstance(record.keys, dict) else {}
    rows: list[tuple[str, str]] = []
    if isinstance(unique := keys.get("unique"), dict):
        rows.append((_("unique key"), shown_key(str(unique.get("key", "")), open_)))
        rows.append((_("unique until"), _when(unique.get("until"))))
        holds = record.unique_lock is not None and active(record)
        rows.append((_("holds its key"), _("yes") if holds else _("no (finished, or its window passed)")))
        rows.append((_("duplicate enqueues it answered"), _answered(record.pk)))
    if isinstance(debounce := keys.get("debounce"), dict):
        key = str(debounce.get("key") or "")
        rows.append((_("debounce key"), shown_key(key, open_) if key else _("the task name")))
        rows.append((_("debounce"), f"{debounce.get('seconds')} s"))
        holds = record.unique_lock is not None and waiting(record)
        rows.append((_("takes new calls"), _("yes (still waiting)") if holds else _("no (a worker started it)")))
        count = keys.get("duplicates") if type(keys.get("duplicates")) is int else 0
        last = _when(keys.get("last_duplicate_at"))
        rows.append((_("calls that replaced its arguments"), f"{count}, {_('the last')} {last}" if count else "0"))
    for option, label in (("rate_limit", _("rate-limit key")), ("concurrency", _("concurrency key"))):
        if isinstance(keys.get(option), str):
            rows.append((label, shown_key(keys[option], open_)))
    return rows


def _answered(task_id: str) -> str:
    """How many enqueues a unique row answered, as counted in Redis (a day after the last)."""
    try:
        count, at = get_broker().duplicates(task_id)
    except BrokerUnavailable:
        return _("unknown (Redis is unreachable)")
    if not count:
        return "0"
    moment = datetime.fromtimestamp(at, tz=UTC) if at is not None and 0 <= at < 253402300799 else None
    return f"{count}, {_('the last')} {_when(moment.isoformat() if moment else None)}"


@dataclass
class LimitRow:
    task: str
    limit: str
    key: str
    state: str
    running: list[tuple[str, str]] = field(default_factory=list)  # (task id, admin url)


def _cap_row(name: str, concurrency: int, state: KeyState, open_: bool) -> LimitRow:
    key = _("(whole task)") if state.key is None else shown_key(state.key, open_)
    text = _("%(held)d of %(cap)d running, %(waiting)d waiting") % {
        "held": len(state.holders),
        "cap": concurrency,
        "waiting": state.waiting,
    }
    running = [(i, reverse("admin:djtasks_taskrecord_change", args=[quote(i)])) for i in state.holders]
    return LimitRow(name, _("concurrency %d") % concurrency, key, text, running)


def panel(open_: bool) -> tuple[list[LimitRow], str]:
    """Rows of the dashboard's panel for the declared keyed rate limits and caps, and a Redis error if any."""
    rows: list[LimitRow] = []
    try:
        for name in sorted(START)[:SHOWN_TASKS]:
            gate, task = START[name], registry.get(name)
            if gate.rate_key is not None and isinstance(task, Task):
                for state in get_broker().rate_key_states(name):
                    seconds = (state.next_start_ms or 0) / 1000
                    wait = _("next start in %s") % display.duration(seconds) if seconds else _("may start now")
                    key = shown_key(state.key or "", open_)
                    rows.append(LimitRow(name, f"rate_limit {task.rate_limit}", key, wait))
            if gate.concurrency is not None:
                for state in get_broker().cap_states(name, keyed=gate.concurrency_key is not None):
                    rows.append(_cap_row(name, gate.concurrency, state, open_))
    except BrokerUnavailable as exc:
        return rows, str(exc)
    return rows, ""
