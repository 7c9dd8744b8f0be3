"""Admin retry, revoke and redaction: each guarded by its own permission, POST with CSRF only."""

import html
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from djtasks.calling.revoke import revoke
from djtasks.models import TaskRecord

pytestmark = pytest.mark.django_db

SECRET_CALL = {"user": "ann", "password": "hunter2", "options": {"api_key": "k-123"}}


def staff(*codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="djtasks", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def failed():
    return TaskRecord.objects.create(
        id="t-failed",
        task_name="tests.testapp.tasks.add",
        state="FAILURE",
        args=[1, 2],
        kwargs=SECRET_CALL,
        queue="mail",
        priority=5,
    )


def test_arguments_are_redacted_without_the_dedicated_permission(failed):
    page = staff("view_taskrecord").get("/admin/djtasks/taskrecord/t-failed/change/").content.decode()
    assert "hunter2" not in page and "k-123" not in page and "********" in page and "ann" in page


def test_arguments_are_shown_with_the_dedicated_permission(failed):
    page = staff("view_taskrecord", "view_task_arguments").get("/admin/djtasks/taskrecord/t-failed/change/")
    assert "hunter2" in page.content.decode() and "k-123" in page.content.decode()


def test_retry_needs_its_permission_and_hides_its_button_without_it(failed):
    client = staff("view_taskrecord")
    assert 'id="djtasks-retry"' not in client.get("/admin/djtasks/taskrecord/t-failed/change/").content.decode()
    assert client.post("/admin/djtasks/taskrecord/t-failed/retry/").status_code == 403
    assert TaskRecord.objects.count() == 1


def test_retry_creates_a_linked_task_with_the_same_call(failed):
    response = staff("view_taskrecord", "retry_task").post("/admin/djtasks/taskrecord/t-failed/retry/")
    copy = TaskRecord.objects.exclude(pk="t-failed").get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{copy.pk}/change/")
    assert (copy.state, copy.parent_id, copy.root_id) == ("PENDING", "t-failed", "t-failed")
    assert (copy.task_name, copy.args, copy.kwargs, copy.queue, copy.priority) == (
        failed.task_name,
        [1, 2],
        SECRET_CALL,
        "mail",
        5,
    )


def test_retry_refuses_a_get_and_a_post_without_csrf_token(failed):
    User.objects.create_superuser("root", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.login(username="root", password="pw")
    assert client.get("/admin/djtasks/taskrecord/t-failed/retry/").status_code == 405
    assert client.post("/admin/djtasks/taskrecord/t-failed/retry/").status_code == 403
    assert TaskRecord.objects.count() == 1


def test_retry_of_an_unregistered_task_says_so(failed):
    TaskRecord.objects.filter(pk="t-failed").update(task_name="gone.task")
    response = staff("view_taskrecord", "retry_task").post("/admin/djtasks/taskrecord/t-failed/retry/", follow=True)
    assert "not a registered task" in response.content.decode() and TaskRecord.objects.count() == 1


def test_the_bulk_retry_action_needs_the_permission(failed):
    data = {"action": "retry_tasks", "_selected_action": ["t-failed"]}
    staff("view_taskrecord", "delete_taskrecord").post("/admin/djtasks/taskrecord/", data)
    assert TaskRecord.objects.count() == 1


def test_revoke_turns_waiting_and_running_tasks_revoked_and_leaves_finished_ones(failed):
    TaskRecord.objects.create(id="t-waiting", task_name="x", state="PENDING")
    TaskRecord.objects.create(
        id="t-running", task_name="x", state="STARTED", lease_expires_at=timezone.now() + timezone.timedelta(seconds=30)
    )
    client = staff("view_taskrecord", "revoke_task")
    data = {"action": "revoke_tasks", "_selected_action": ["t-waiting", "t-running", "t-failed"]}
    page = client.post("/admin/djtasks/taskrecord/", data, follow=True).content.decode()
    shown = [html.unescape(m) for m in re.findall(r'<li class="(?:success|warning)">(.*?)</li>', page, re.S)]
    assert sorted(shown) == [
        "Already FAILURE: t-failed",
        "Revoked: t-waiting",
        "Revoked; it is running and its result will be discarded: t-running",
    ]
    states = dict(TaskRecord.objects.values_list("id", "state"))
    assert states == {"t-waiting": "REVOKED", "t-running": "REVOKED", "t-failed": "FAILURE"}
    assert TaskRecord.objects.get(pk="t-waiting").finished_at is not None


def test_revoke_needs_its_permission():
    TaskRecord.objects.create(id="t-waiting", task_name="x", state="PENDING")
    assert staff("view_taskrecord").post("/admin/djtasks/taskrecord/t-waiting/revoke/").status_code == 403
    assert TaskRecord.objects.get(pk="t-waiting").state == "PENDING"


def test_revoke_reports_an_unknown_id():
    assert revoke("nope") == "unknown"


def test_the_list_filters_by_task_names_from_the_registry():
    TaskRecord.objects.create(id="row-of-add", task_name="tests.testapp.tasks.add", state="SUCCESS")
    TaskRecord.objects.create(id="row-of-fail", task_name="tests.testapp.tasks.fail", state="FAILURE")
    client = staff("view_taskrecord")
    page = client.get("/admin/djtasks/taskrecord/?task_name=tests.testapp.tasks.fail").content.decode()
    assert "row-of-fail" in page and "row-of-add" not in page
    assert "?task_name=custom.name" in page, "the filter offers every registered task"


def test_the_list_stops_counting_at_the_cap_and_says_so(monkeypatch):
    monkeypatch.setattr("djtasks.admin.paging.COUNT_CAP", 3)
    monkeypatch.setattr("djtasks.admin.tasks.COUNT_CAP", 3)
    for i in range(5):
        TaskRecord.objects.create(id=f"row-{i}", task_name="x", state="SUCCESS")
    page = staff("view_taskrecord").get("/admin/djtasks/taskrecord/").content.decode()
    assert "3 tasks" in page and "Counting stops at 3 tasks" in page
