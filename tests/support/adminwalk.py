"""The admin permission walk: users with each permission set, every djtasks admin URL, seeded secrets."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from djtasks.models import DeadLetter, PeriodicRun, PeriodicTask, TaskRecord
from djtasks.transport.broker import get_broker

# A value under a secret key of every seeded row's arguments; letters and digits only, so that
# HTML escaping cannot hide it from the checks.
SECRET = "Zq8wX1vBmK3tR7yH"
CALL = {"api_token": SECRET, "user": "ann"}
ADD = "tests.testapp.tasks.add"
# The id of the task row every object URL of the walk is built for: admin quoting is part of the walk.
AWKWARD_ID = 'w:a/l_k"?#% é'
VIEW = ("view_taskrecord", "view_deadletter", "view_periodictask", "view_periodicrun")
EXTRA = (
    "retry_task",
    "revoke_task",
    "delete_taskrecord",
    "view_task_arguments",
    "delete_deadletter",
    "add_periodictask",
    "change_periodictask",
    "delete_periodictask",
    "delete_periodicrun",
    # Issue 16's fleet controls, each its own permission (record/steering.py).
    "shutdown_worker",
    "resize_pool",
    "manage_consumers",
    "change_rate_limit",
    "change_time_limit",
    "pause_queue",
    "purge_queue",
    "run_task_now",
)
MODELS = ("taskrecord", "deadletter", "periodictask", "periodicrun", "dashboard", "fleet", "retryingtask", "deadtask")
# A worker that looks online (its heartbeat), for the worker controls to address.
WALK_WORKER = "walk@walkhost"


@dataclass(frozen=True)
class Walker:
    """One kind of user: how they log in and which djtasks permissions they hold."""

    name: str
    perms: frozenset[str]
    staff: bool = True
    active: bool = True
    superuser: bool = False
    anonymous: bool = False

    @property
    def in_admin(self) -> bool:
        """Whether the admin lets this user in at all (anyone else is sent to the login page)."""
        return not self.anonymous and self.staff and self.active

    def has(self, *codenames: str) -> bool:
        return self.superuser or all(c in self.perms for c in codenames)

    def sees_secrets(self) -> bool:
        return self.in_admin and self.has("view_task_arguments")

    def client(self) -> Client:
        client = Client()
        if self.anonymous:
            return client
        user = User.objects.create_user(
            self.name, password="pw", is_staff=self.staff, is_active=self.active, is_superuser=self.superuser
        )
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="djtasks", codename__in=self.perms)
        )
        client.force_login(user)
        return client


ALL_PERMS = frozenset(VIEW + EXTRA)
WALKERS = [
    Walker("superuser", frozenset(), superuser=True),
    Walker("viewer", frozenset(VIEW)),
    *(Walker(f"viewer+{extra}", frozenset((*VIEW, extra))) for extra in EXTRA),
    Walker("retry-without-view", frozenset(("retry_task", "revoke_task", "view_task_arguments"))),
    Walker("staff-without-permissions", frozenset()),
    Walker("inactive-staff", ALL_PERMS, active=False),
    Walker("not-staff", ALL_PERMS, staff=False),
    Walker("anonymous", frozenset(), anonymous=True),
]


def seed() -> dict[str, Any]:
    """Rows whose arguments, results, progress, errors and raw messages all hold SECRET; return their keys."""
    now = timezone.now()
    rows = dict(task_name=ADD, kwargs=CALL)
    TaskRecord.objects.create(id=AWKWARD_ID, state="PENDING", **rows)
    TaskRecord.objects.create(
        id="t-failed",
        state="FAILURE",
        exception_type="builtins.ValueError",
        exception_message=f"refused {SECRET}",
        traceback=f'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: refused {SECRET!r}',
        errors=[
            {
                "attempt": 1,
                "exception_type": "builtins.ValueError",
                "message": f"bad {SECRET}",
                "traceback": f"TB {SECRET}",
                "at": now.isoformat(),
            }
        ],
        finished_at=now,
        **rows,
    )
    TaskRecord.objects.create(
        id="t-done", state="SUCCESS", result={"echo": SECRET, "session": {"token": SECRET}}, finished_at=now, **rows
    )
    TaskRecord.objects.create(
        id="t-running",
        state="STARTED",
        lease_expires_at=now + timedelta(minutes=5),
        progress={"current": 1, "total": 2, "percent": 50.0, "message": f"using {SECRET}", "at": now.isoformat()},
        **rows,
    )
    TaskRecord.objects.create(id="t-letter", state="PENDING", **rows)
    TaskRecord.objects.create(id="t-retry", state="RETRY", eta=now + timedelta(hours=1), retries=1, **rows)
    broker = get_broker()
    broker.heartbeat(WALK_WORKER, {"id": WALK_WORKER, "queues": ["default"], "concurrency": 2}, ttl_s=3600)
    broker.pause_queue("walk-paused", "paused by the walk")
    broker.client.zadd(broker.queue_key("default", "scheduled"), {"t-retry": 1})
    letter = DeadLetter.objects.create(
        task_id="t-letter",
        task_name=ADD,
        queue="default",
        reason=f"arguments do not match {ADD}(x, y): got an unexpected keyword argument 'api_token' ({SECRET})",
        raw=json.dumps({"args": [], "kwargs": CALL}),
    )
    DeadLetter.objects.create(
        task_id="t-failed", task_name=ADD, queue="default", reason="cut", raw='{"kwargs": {"api_token": "' + SECRET
    )
    DeadLetter.objects.create(task_id="", queue="default", reason="malformed message: not UTF-8", raw="\\xff\\xfe")
    enabled = PeriodicTask.objects.create(
        name="walk-enabled", task=ADD, kwargs=CALL, interval=60, next_run_at=now + timedelta(minutes=1)
    )
    PeriodicTask.objects.create(name="walk-disabled", task=ADD, kwargs=CALL, interval=60, enabled=False)
    run = PeriodicRun.objects.create(
        periodic_task=enabled, scheduled_for=now, fired_at=now, task_id="t-done", worker="w1"
    )
    return {
        "taskrecord": AWKWARD_ID,
        "deadletter": letter.pk,
        "periodictask": enabled.pk,
        "periodicrun": run.pk,
        "dashboard": AWKWARD_ID,
        "fleet": AWKWARD_ID,
        "retryingtask": "t-retry",
        "deadtask": "t-failed",
    }


def fingerprint() -> tuple[Any, ...]:
    """Everything the djtasks admin could change, to compare before and after a request: rows, the
    admin's log, and what Redis holds (pauses, overrides, control lists)."""
    rows = tuple(
        sorted(tuple(sorted((k, str(v)) for k, v in row.items())) for row in model.objects.values())
        for model in (TaskRecord, DeadLetter, PeriodicTask, PeriodicRun, LogEntry)
    )
    return (*rows, redis_state())


def redis_state() -> tuple[tuple[bytes, bytes], ...]:
    client = get_broker().client
    return tuple(sorted((key, client.dump(key)) for key in client.keys("*")))  # type: ignore[union-attr]


def restore_redis(state: tuple[tuple[bytes, bytes], ...]) -> None:
    """Put Redis back as it was (expiries dropped), so that each request of the walk starts alike."""
    client = get_broker().client
    client.flushdb()
    for key, dump in state:
        client.restore(key, 0, dump)


@dataclass(frozen=True)
class AdminURL:
    route: str  # as declared, e.g. "admin/djtasks/taskrecord/<path:object_id>/retry/"
    name: str | None
    model: str  # "" for the app index

    @property
    def view(self) -> str:
        """What the view does: changelist, add, change, delete, history, retry, ...; "redirect" if unnamed."""
        if self.name == "app_list":
            return "app_list"
        if self.name is None:
            return "redirect"
        return self.name.removeprefix(f"djtasks_{self.model}_")

    def url(self, pk: Any) -> str:
        if self.name == "app_list":
            return "/admin/djtasks/"
        path = re.sub(r"<path:object_id>", quote(str(pk)), self.route)
        assert "<" not in path, f"{self.route}: a URL parameter the walk does not know; teach it"
        return "/" + path


def djtasks_admin_urls() -> list[AdminURL]:
    """Every URL the admin serves for the djtasks app, found by walking the URL resolver."""
    found: list[AdminURL] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("admin/"):
                if pattern.name == "app_list" or route.startswith("admin/djtasks/"):
                    model = route.split("/")[2] if route.startswith("admin/djtasks/") else ""
                    found.append(AdminURL(route, pattern.name, model))

    walk(get_resolver().url_patterns, "")
    return found


def djtasks_model_admins() -> dict[str, admin.ModelAdmin]:
    return {
        model._meta.model_name: model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "djtasks"
    }


ID_IN_LIST = re.compile(r'class="djtasks-id" title="([^"]*)"')
