"""System checks: bad djtasks settings fail with an exact message and a hint (the rules: core.conf.Settings)."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections, router

from djtasks.calling.enqueue import BACKEND_PATH
from djtasks.core import registry
from djtasks.core.conf import Settings
from djtasks.core.schema import problems
from djtasks.periodic.entries import parse_entry
from djtasks.periodic.schedules import ScheduleError
from djtasks.record.models import TaskRecord


@checks.register("djtasks")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    raw = getattr(settings, "DJTASKS", {})
    errors: list[checks.CheckMessage] = [
        checks.Error(problem.message, hint=problem.hint, id=problem.check_id) for problem in problems(raw, Settings)
    ]
    if not isinstance(raw, dict):
        return errors
    if isinstance(raw.get("BEAT_SCHEDULE"), dict):
        errors += check_beat_schedule(raw["BEAT_SCHEDULE"])
    if not any(p.get("BACKEND") == BACKEND_PATH for p in getattr(settings, "TASKS", {}).values()):
        errors.append(
            checks.Warning(
                "No TASKS backend uses djtasks.",
                hint=f'Set TASKS = {{"default": {{"BACKEND": "{BACKEND_PATH}"}}}}.',
                id="djtasks.W001",
            )
        )
    return errors


def check_beat_schedule(entries: dict[Any, Any]) -> list[checks.CheckMessage]:
    """Report BEAT_SCHEDULE entries of the wrong shape, with a bad schedule, or naming an unknown task."""
    errors: list[checks.CheckMessage] = []
    for name, raw in entries.items():
        try:
            entry = parse_entry(name, raw)
        except ScheduleError as exc:
            errors.append(checks.Error(str(exc), hint=exc.hint or None, id=exc.check_id))
            continue
        if registry.get(entry.task) is None:
            close = difflib.get_close_matches(entry.task, registry.names(), n=1)
            errors.append(
                checks.Error(
                    f"DJTASKS['BEAT_SCHEDULE'][{name!r}] names task {entry.task!r}, which is not registered.",
                    hint=f"Did you mean {close[0]!r}?" if close else "Declare it with @task in an app's tasks.py.",
                    id="djtasks.E072",
                )
            )
    return errors


def check_backend(backend: Any) -> list[checks.CheckMessage]:
    alias = router.db_for_write(TaskRecord)
    conn = connections[alias]
    if conn.vendor == "sqlite" and (conn.settings_dict.get("OPTIONS", {}).get("transaction_mode") or "").upper() != (
        "IMMEDIATE"
    ):
        return [
            checks.Warning(
                f"Database {alias!r} is SQLite without transaction_mode IMMEDIATE: "
                "several worker processes writing at once will hit 'database is locked'.",
                hint='OPTIONS = {"transaction_mode": "IMMEDIATE", "timeout": 30, '
                '"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}',
                id="djtasks.W002",
            )
        ]
    return []
