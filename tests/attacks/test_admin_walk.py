"""Walk every djtasks admin URL and action as every kind of user; try to read or search out a secret.

The URLs come from the URL resolver and the actions from ModelAdmin.get_actions, so a view or an
action added later is walked too, and fails here until its permission is declared below.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.db import transaction
from django.test import RequestFactory

from djtasks.admin import controls
from djtasks.core.conf import get_settings
from djtasks.models import DeadLetter, PeriodicRun, PeriodicTask, TaskRecord
from tests.conftest import point_djtasks_at
from tests.support.adminwalk import (
    ADD,
    ID_IN_LIST,
    MODELS,
    SECRET,
    WALK_WORKER,
    WALKERS,
    AdminURL,
    Walker,
    djtasks_admin_urls,
    djtasks_model_admins,
    fingerprint,
    redis_state,
    restore_redis,
    seed,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_server")]

MODEL_PERMS = (
    "view_taskrecord",
    "view_deadletter",
    "view_periodictask",
    "view_periodicrun",
    "delete_taskrecord",
    "delete_deadletter",
    "add_periodictask",
    "change_periodictask",
    "delete_periodictask",
    "delete_periodicrun",
)
# Each action: what it takes besides seeing the list, and which objects to select so that it changes something.
ACTIONS = {
    ("taskrecord", "delete_selected"): ("delete_taskrecord",),
    ("taskrecord", "retry_tasks"): ("retry_task",),
    ("taskrecord", "revoke_tasks"): ("revoke_task",),
    ("taskrecord", "terminate_tasks"): ("revoke_task",),
    ("deadletter", "delete_selected"): ("delete_deadletter",),
    ("deadletter", "requeue"): ("delete_deadletter", "retry_task"),
    ("periodictask", "delete_selected"): ("delete_periodictask",),
    ("periodictask", "enable"): ("change_periodictask",),
    ("periodictask", "disable"): ("change_periodictask",),
    ("periodictask", "run_selected_now"): ("change_periodictask",),
    ("periodicrun", "delete_selected"): ("delete_periodicrun",),
    ("retryingtask", "run_now"): ("run_task_now",),
    ("deadtask", "retry_tasks"): ("retry_task",),
}
# Deleting a periodic task deletes its runs: Django asks for the right to delete those too.
ALSO_TO_RUN = {("periodictask", "delete_selected"): ("delete_periodicrun",)}
CUSTOM_VIEWS = {"retry": "retry_task", "revoke": "revoke_task"}
# The fleet's pages (GET only) and its controls (POST only, each with its permission and what to send).
FLEET_PAGES = ("changelist", "queues", "limits", "scheduled")
FLEET_CONTROLS = {
    "shutdown": ("shutdown_worker", {"worker": WALK_WORKER}),
    "pool_grow": ("resize_pool", {"worker": WALK_WORKER, "n": "1"}),
    "pool_shrink": ("resize_pool", {"worker": WALK_WORKER, "n": "1"}),
    "add_consumer": ("manage_consumers", {"worker": WALK_WORKER, "queue": "walk-extra"}),
    "cancel_consumer": ("manage_consumers", {"worker": WALK_WORKER, "queue": "default"}),
    "pause": ("pause_queue", {"queue": "default"}),
    "resume": ("pause_queue", {"queue": "walk-paused"}),
    "purge": ("purge_queue", {"queue": "default", "confirm": "yes"}),
    "rate_limit": ("change_rate_limit", {"task": ADD, "rate": "5/m"}),
    "time_limit": ("change_time_limit", {"task": ADD, "soft": "10", "hard": "20"}),
    "run_now": ("run_task_now", {"task_id": "t-retry"}),
}


@pytest.fixture(autouse=True)
def quick_replies(monkeypatch):
    """The walk's worker is a heartbeat only: wait a moment for its reply, not the admin's 2 s."""
    monkeypatch.setattr(controls, "REPLY_TIMEOUT", 0.05)


def can_view(walker: Walker, model: str) -> bool:
    if model in ("dashboard", "fleet", "retryingtask", "deadtask"):
        return walker.has("view_taskrecord")
    return walker.has(f"view_{model}") or (model == "periodictask" and walker.has("change_periodictask"))


def expected(walker: Walker, url: AdminURL, method: str) -> tuple[int, bool]:
    """The status a request must get, and whether it may change anything."""
    if not walker.in_admin:
        return 302, False  # to the login page
    view, model = url.view, url.model
    if view == "redirect":
        return 302, False
    if view == "app_list":
        return (200 if any(walker.has(p) for p in MODEL_PERMS) else 404), False
    if (view == "changelist" and model == "dashboard") or (model == "fleet" and view in FLEET_PAGES):
        return (200 if can_view(walker, model) else 403) if method == "GET" else 405, False
    if model == "fleet" and view in FLEET_CONTROLS:
        if method == "GET":
            return 405, False
        allowed = can_view(walker, model) and walker.has(FLEET_CONTROLS[view][0])
        return (302, True) if allowed else (403, False)
    if view in ("changelist", "history"):
        return (200 if can_view(walker, model) else 403), False
    if view == "add":
        return (200 if model == "periodictask" and walker.has("add_periodictask") else 403), False
    if view == "change":
        if method == "GET":
            return (200 if can_view(walker, model) else 403), False
        return (200 if model == "periodictask" and walker.has("change_periodictask") else 403), False
    if view == "delete":
        if method == "GET":
            return (200 if walker.has(f"delete_{model}") else 403), False
        allowed = walker.has(f"delete_{model}", *ALSO_TO_RUN.get((model, "delete_selected"), ()))
        return (302, True) if allowed else (403, False)
    if view in CUSTOM_VIEWS:
        if method == "GET":
            return 405, False
        allowed = can_view(walker, model) and walker.has(CUSTOM_VIEWS[view])
        return (302, True) if allowed else (403, False)
    pytest.fail(f"{url.route} ({url.name}): declare in this test what it needs and returns")


def attempt(client, method: str, url: str, data: dict | None = None):
    """Make a request, note whether it changed any djtasks row or Redis, and undo what it changed."""
    before = fingerprint()
    redis_before = redis_state()
    with transaction.atomic():
        response = getattr(client, method.lower())(url, data or {})
        changed = fingerprint() != before
        transaction.set_rollback(True)
    restore_redis(redis_before)
    return response, changed


def body_of(response) -> str:
    return response.content.decode(errors="replace") if hasattr(response, "content") else ""


def assert_no_secret(walker: Walker, what: str, response) -> None:
    if not walker.sees_secrets():
        assert SECRET not in body_of(response), f"{walker.name} read the secret in {what}"


def test_the_walk_finds_every_djtasks_admin_view():
    views = {(url.model, url.view) for url in djtasks_admin_urls()}
    assert {("taskrecord", "retry"), ("taskrecord", "revoke"), ("dashboard", "changelist"), ("", "app_list")} <= views
    assert {model for model, _ in views} == {"", *MODELS}
    assert {("fleet", view) for view in (*FLEET_PAGES, *FLEET_CONTROLS)} <= views


@pytest.mark.parametrize("walker", WALKERS, ids=lambda w: w.name)
def test_every_admin_url_answers_each_user_as_their_permissions_say(walker):
    pks = seed()
    client = walker.client()
    wrong = []
    for url in djtasks_admin_urls():
        address = url.url(pks.get(url.model, ""))
        for method in ("GET", "POST"):
            data = {"post": "yes"} if url.view == "delete" else None
            if url.model == "fleet" and url.view in FLEET_CONTROLS:
                data = FLEET_CONTROLS[url.view][1]
            response, changed = attempt(client, method, address, data)
            want = expected(walker, url, method)
            if (response.status_code, changed) != want:
                wrong.append(f"{method} {address}: {response.status_code}, changed={changed}; expected {want}")
            assert_no_secret(walker, f"{method} {address}", response)
    assert not wrong, "\n".join(wrong)


def test_every_action_is_declared_and_none_sits_on_the_change_form():
    request = RequestFactory().get("/")
    request.user = User.objects.create_superuser("root", password="pw")
    found = set()
    for model, model_admin in djtasks_model_admins().items():
        found |= {(model, name) for name in model_admin.get_actions(request)}
        assert not model_admin.get_actions(request, action_location=ActionLocation.CHANGE_FORM), (
            f"{model} has change-form actions: walk them too"
        )
    assert found == set(ACTIONS)


def selection(model: str, action: str, pks: dict) -> list:
    if (model, action) == ("deadletter", "requeue"):
        return [pks["deadletter"]]  # its row is PENDING: requeued without a confirmation page
    if model in ("retryingtask", "deadtask"):
        return [pks[model]]
    manager = {"taskrecord": TaskRecord, "deadletter": DeadLetter, "periodictask": PeriodicTask}.get(model, PeriodicRun)
    return list(manager.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("walker", WALKERS, ids=lambda w: w.name)
def test_every_action_runs_only_for_the_users_it_is_offered_to(walker):
    pks = seed()
    client = walker.client()
    admins = djtasks_model_admins()
    wrong = []
    for (model, action), needs in ACTIONS.items():
        offer = walker.in_admin and can_view(walker, model) and walker.has(*needs)
        permitted = offer and walker.has(*ALSO_TO_RUN.get((model, action), ()))
        if walker.in_admin and can_view(walker, model):
            request = RequestFactory().get("/")
            request.user = User.objects.get(username=walker.name)
            offered = action in admins[model].get_actions(request)
            if offered != offer:
                wrong.append(f"{model}.{action}: offered={offered}, expected {offer}")
        data = {"action": action, "_selected_action": selection(model, action, pks), "post": "yes"}
        response, changed = attempt(client, "POST", f"/admin/djtasks/{model}/", data)
        want = (302, True) if permitted else ((403 if walker.in_admin else 302), False)
        if (response.status_code, changed) != want:
            wrong.append(f"{model}.{action}: {response.status_code}, changed={changed}; expected {want}")
        assert_no_secret(walker, f"{model}.{action}", response)
    assert not wrong, "\n".join(wrong)


def pages(pks_by_model: dict[str, list]) -> list[str]:
    """Every page that shows task data: lists, searches, details and histories of every seeded row."""
    found = ["/admin/djtasks/dashboard/", "/admin/djtasks/dashboard/?partial=1", "/admin/"]
    for model, pks in pks_by_model.items():
        found += [f"/admin/djtasks/{model}/", f"/admin/djtasks/{model}/?q={SECRET[:5]}"]
        for pk in pks:
            found += [f"/admin/djtasks/{model}/{quote(str(pk))}/{view}/" for view in ("change", "history", "delete")]
    return found


def seeded_pks() -> dict[str, list]:
    return {
        "taskrecord": list(TaskRecord.objects.values_list("pk", flat=True)),
        "deadletter": list(DeadLetter.objects.values_list("pk", flat=True)),
        "periodictask": list(PeriodicTask.objects.values_list("pk", flat=True)),
        "periodicrun": list(PeriodicRun.objects.values_list("pk", flat=True)),
    }


@pytest.mark.parametrize("walker", [w for w in WALKERS if w.in_admin], ids=lambda w: w.name)
def test_the_secret_is_in_no_page_for_users_without_the_permission_and_in_the_details_for_those_with_it(walker):
    seed()
    client = walker.client()
    seen = set()
    for page in pages(seeded_pks()):
        response = client.get(page)
        assert response.status_code in (200, 302, 403, 404), f"{page}: {response.status_code}"
        assert_no_secret(walker, page, response)
        if SECRET in body_of(response):
            seen.add(page.split("/")[3])
    if walker.sees_secrets():
        readable = {m for m in ("taskrecord", "deadletter", "periodictask") if can_view(walker, m)}
        assert readable <= seen, f"{walker.name} should read the secret in {readable - seen}"
    requeue = {"action": "requeue", "_selected_action": seeded_pks()["deadletter"]}
    response, _ = attempt(client, "POST", "/admin/djtasks/deadletter/", requeue)
    assert_no_secret(walker, "the requeue confirmation", response)


def results(body: str) -> str:
    """The rows of a change list (empty when nothing matched), without the page around them."""
    found = re.search(r'<table id="result_list">.*?</table>', body, re.S)
    return found.group(0) if found else ""


ORACLES = [
    ("taskrecord", "q"),
    ("deadletter", "q"),
    ("periodictask", "q"),
    ("periodicrun", "q"),
    ("taskrecord", "kwargs__icontains"),
    ("taskrecord", "kwargs__api_token__startswith"),
    ("taskrecord", "args__icontains"),
    ("taskrecord", "result__icontains"),
    ("taskrecord", "exception_message__icontains"),
    ("taskrecord", "traceback__icontains"),
    ("taskrecord", "errors__icontains"),
    ("taskrecord", "progress__icontains"),
    ("deadletter", "raw__icontains"),
    ("deadletter", "reason__icontains"),
    ("periodictask", "kwargs__icontains"),
    ("periodictask", "kwargs__api_token__startswith"),
    ("periodicrun", "periodic_task__kwargs__icontains"),
]


@pytest.mark.parametrize(("model", "param"), ORACLES, ids=lambda v: str(v))
def test_searching_for_prefixes_of_the_secret_does_not_narrow_anything_without_the_permission(model, param):
    seed()
    viewer = next(w for w in WALKERS if w.name == "viewer").client()
    for k in range(1, len(SECRET) + 1):
        right, wrong = SECRET[:k], SECRET[: k - 1] + "!"
        hit = viewer.get(f"/admin/djtasks/{model}/", {param: right})
        miss = viewer.get(f"/admin/djtasks/{model}/", {param: wrong})
        assert (hit.status_code, results(body_of(hit))) == (miss.status_code, results(body_of(miss))), (
            f"{model} ?{param}={right!r} answers unlike a wrong guess: an oracle"
        )


def test_with_the_permission_argument_text_is_searchable_and_without_it_the_admin_says_what_is():
    seed()
    reader = next(w for w in WALKERS if w.name == "viewer+view_task_arguments").client()
    found = set(ID_IN_LIST.findall(body_of(reader.get("/admin/djtasks/taskrecord/", {"q": SECRET[:6]}))))
    assert {"t-failed", "t-done", "t-letter"} <= found
    page = body_of(next(w for w in WALKERS if w.name == "viewer").client().get("/admin/djtasks/taskrecord/"))
    assert "Search by exact task id or part of a task name" in page and "arguments" in page


@pytest.mark.parametrize("walker", WALKERS, ids=lambda w: w.name)
def test_the_metrics_view_answers_staff_and_the_token_only(walker, redis_server):
    client = walker.client()
    assert client.get("/metrics/").status_code == (200 if walker.in_admin else 401)
    assert client.post("/metrics/").status_code == 405
    try:
        settings.DJTASKS = {**settings.DJTASKS, "METRICS_TOKEN": "scrape-me"}
        get_settings.cache_clear()
        assert client.get("/metrics/", headers={"Authorization": "Bearer scrape-me"}).status_code == 200
        assert client.get("/metrics/", headers={"Authorization": "Bearer wrong"}).status_code == (
            200 if walker.in_admin else 401
        )
    finally:
        settings.DJTASKS = {k: v for k, v in settings.DJTASKS.items() if k != "METRICS_TOKEN"}
        point_djtasks_at(redis_server.url)
