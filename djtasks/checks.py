"""System checks: bad djtasks settings fail with an exact message and a hint (worker.config.problems, the rules
of core.conf.Settings: the worker refuses to start on the same problems)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections, router

from djtasks.calling.enqueue import BACKEND_PATH
from djtasks.core import celeryconf
from djtasks.core.conf import Settings
from djtasks.record.models import TaskRecord
from djtasks.worker import config


@checks.register("djtasks")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = [
        checks.Error(problem.message, hint=problem.hint, id=problem.check_id) for problem in config.problems()
    ]
    # Celery's settings djtasks does not read (or reads through another name): none is silently ignored.
    raw = getattr(settings, "DJTASKS", {})
    for problem in celeryconf.problems(raw if isinstance(raw, dict) else {}, Settings.names()):
        kind = checks.Error if problem.check_id.startswith("djtasks.E") else checks.Warning
        errors.append(kind(problem.message, hint=problem.hint, id=problem.check_id))
    if not any(p.get("BACKEND") == BACKEND_PATH for p in getattr(settings, "TASKS", {}).values()):
        errors.append(
            checks.Warning(
                "No TASKS backend uses djtasks.",
                hint=f'Set TASKS = {{"default": {{"BACKEND": "{BACKEND_PATH}"}}}}.',
                id="djtasks.W001",
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
