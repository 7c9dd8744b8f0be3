"""The admin shows update_state()'s custom state and meta and a call's shadow name, redacted like the rest."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from djtasks.models import TaskRecord

pytestmark = pytest.mark.django_db
SECRET = "hunter2-very-secret"


def client_for(*codenames: str, superuser: bool = False) -> Client:
    if superuser:
        user = User.objects.create_superuser("root", "root@example.com", "pw")
    else:
        user = User.objects.create_user("viewer", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def running():
    return TaskRecord.objects.create(
        id="t-progress",
        task_name="app.tasks.import_file",
        state="PENDING",
        attempts=1,
        worker="w1",
        lease_token="tok",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
        kwargs={"password": SECRET},
        options={"shadow": "import <b>big</b> file", "time_limit": 60.0},
        reported={"state": "PROGRESS", "meta": {"done": 3, "api_token": SECRET}, "attempt": 1, "at": "now"},
    )


def test_the_list_and_the_detail_show_the_custom_state_and_the_shadow_name(running):
    client = client_for(superuser=True)
    listing = client.get("/admin/djtasks/taskrecord/").content.decode()
    assert "djtasks-custom" in listing and ">PROGRESS<" in listing
    assert "import &lt;b&gt;big&lt;/b&gt; file" in listing and "app.tasks.import_file" in listing
    detail = client.get("/admin/djtasks/taskrecord/t-progress/change/").content.decode()
    assert "Reported state" in detail and "<strong>PROGRESS</strong>" in detail and SECRET in detail
    assert "&quot;time_limit&quot;: 60.0" in detail


def test_a_stale_report_is_not_shown_once_the_task_moved_on(running):
    running.attempts = 2  # a later attempt has not reported anything
    running.save()
    listing = client_for(superuser=True).get("/admin/djtasks/taskrecord/").content.decode()
    assert "djtasks-custom" not in listing


def test_the_meta_is_redacted_without_the_permission_and_cannot_be_searched(running):
    client = client_for("view_taskrecord")
    detail = client.get("/admin/djtasks/taskrecord/t-progress/change/").content.decode()
    assert "<strong>PROGRESS</strong>" in detail and SECRET not in detail and "********" in detail
    for lookup in ("reported__icontains", "options__icontains"):
        assert client.get(f"/admin/djtasks/taskrecord/?{lookup}=hunter").status_code == 400
