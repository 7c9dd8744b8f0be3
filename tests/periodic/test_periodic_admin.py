"""Periodic tasks in the admin: add, edit, enable, disable, run now; an edit reaches the beat without restart."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from djtasks.models import PeriodicRun, PeriodicTask, Source, TaskRecord
from djtasks.periodic.beat import Beat

pytestmark = pytest.mark.django_db
ADD = "tests.testapp.tasks.add"
URL = "/admin/djtasks/periodictask/"


@pytest.fixture
def admin_client():
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def form(**overrides):
    data = {
        "name": "nightly",
        "task": ADD,
        "enabled": "on",
        "description": "",
        "interval": "",
        "crontab": "0 3 * * *",
        "timezone": "Europe/Paris",
        "one_off_at_0": "",
        "one_off_at_1": "",
        "args": "[1, 2]",
        "kwargs": "{}",
        "queue": "",
        "priority": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_a_periodic_task_added_in_the_admin_is_planned(admin_client):
    response = admin_client.post(f"{URL}add/", form())
    assert response.status_code == 302, response.content.decode()[:2000]
    row = PeriodicTask.objects.get()
    assert row.source == Source.ADMIN and row.crontab == "0 3 * * *" and row.args == [1, 2]
    assert row.next_run_at > timezone.now() and row.next_run_at.astimezone(row.schedule.zone).hour == 3
    page = admin_client.get(URL).content.decode()
    assert "nightly" in page and "0 3 * * * (Europe/Paris)" in page


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"task": "tests.testapp.tasks.nope"}, "No task named &#x27;tests.testapp.tasks.nope&#x27; is registered."),
        ({"crontab": "0 25 * * *"}, "crontab hour=&#x27;25&#x27; is not a valid cron field."),
        ({"crontab": "", "interval": ""}, "needs exactly one of: every N seconds, crontab, once at, solar event."),
        ({"interval": "30"}, "needs exactly one of: every N seconds, crontab, once at, solar event."),
        ({"timezone": "Europe/Pariss"}, "&#x27;Europe/Pariss&#x27; is not a known time zone"),
        ({"args": "{}"}, "A JSON list, e.g. [1, 2]."),
    ],
)
def test_a_bad_periodic_task_is_refused_with_a_reason(admin_client, overrides, error):
    response = admin_client.post(f"{URL}add/", form(**overrides))
    assert response.status_code == 200 and error in response.content.decode()
    assert not PeriodicTask.objects.exists()


def test_a_schedule_edit_replans_and_the_next_tick_follows_it(admin_client, redis_server):
    admin_client.post(f"{URL}add/", form())
    row = PeriodicTask.objects.get()
    response = admin_client.post(f"{URL}{row.pk}/change/", form(crontab="", interval="2"))
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.interval == 2.0 and row.next_run_at <= timezone.now() + timedelta(seconds=2)
    beat = Beat("w1", "default", clock=lambda: timezone.now() + timedelta(seconds=3), min_interval=0)
    beat.synced = True
    assert beat.tick() == 1  # the same beat object, no restart: it reads the table every tick


def test_disabling_in_the_admin_stops_the_beat_and_enabling_resumes_it(admin_client, redis_server):
    admin_client.post(f"{URL}add/", form(crontab="", interval="1"))
    row = PeriodicTask.objects.get()
    beat = Beat("w1", "default", clock=lambda: timezone.now() + timedelta(seconds=2), min_interval=0)
    beat.synced = True
    admin_client.post(URL, {"action": "disable", "_selected_action": [row.pk]})
    assert beat.tick() == 0
    enabled_at = timezone.now()
    admin_client.post(URL, {"action": "enable", "_selected_action": [row.pk]})
    assert beat.tick() >= 1
    # Enabling plans from now: the time it was off is not made up for.
    assert all(run.scheduled_for > enabled_at for run in PeriodicRun.objects.all())


def test_run_now_enqueues_and_the_detail_lists_the_runs(admin_client):
    admin_client.post(f"{URL}add/", form())
    row = PeriodicTask.objects.get()
    response = admin_client.post(URL, {"action": "run_selected_now", "_selected_action": [row.pk]}, follow=True)
    [run] = PeriodicRun.objects.all()
    assert run.manual and TaskRecord.objects.filter(pk=run.task_id, task_name=ADD).exists()
    assert f"enqueued task {run.task_id}" in response.content.decode()
    page = admin_client.get(f"{URL}{row.pk}/change/").content.decode()
    assert run.task_id in page and f"/admin/djtasks/taskrecord/{run.task_id}/change/" in page and "PENDING" in page
    history = admin_client.get(f"/admin/djtasks/periodicrun/?periodic_task__id__exact={row.pk}").content.decode()
    assert run.task_id in history


def test_a_row_from_settings_only_has_enabled_editable(admin_client):
    row = PeriodicTask.objects.create(
        name="from-code", task=ADD, interval=30, source=Source.SETTINGS, next_run_at=timezone.now()
    )
    page = admin_client.get(f"{URL}{row.pk}/change/").content.decode()
    assert 'name="enabled"' in page and 'name="interval"' not in page and 'name="task"' not in page
    response = admin_client.post(f"{URL}{row.pk}/change/", {"description": "x"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert not row.enabled and row.interval == 30.0 and row.description == "x"


def staff(*codenames, name="staff"):
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="djtasks", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_a_view_only_user_cannot_enable_disable_or_run_periodic_tasks():
    row = PeriodicTask.objects.create(name="p", task=ADD, interval=30, enabled=False)
    client = staff("view_periodictask")
    page = client.get(URL).content.decode()
    assert 'value="run_selected_now"' not in page and 'value="enable"' not in page
    for action in ("enable", "disable", "run_selected_now"):
        assert client.post(URL, {"action": action, "_selected_action": [row.pk]}).status_code == 403
    assert not PeriodicTask.objects.get().enabled and not TaskRecord.objects.exists()


def test_without_the_arguments_permission_the_arguments_are_redacted_and_kept_on_save():
    row = PeriodicTask.objects.create(
        name="p", task=ADD, interval=30, kwargs={"api_token": "tok-12345", "n": 1}, next_run_at=timezone.now()
    )
    client = staff("view_periodictask", "change_periodictask")
    page = client.get(f"{URL}{row.pk}/change/").content.decode()
    assert "tok-12345" not in page and "********" in page and 'name="kwargs"' not in page
    response = client.post(f"{URL}{row.pk}/change/", form(name="p", crontab="", interval="60"))
    assert response.status_code == 302, response.content.decode()[:2000]
    row.refresh_from_db()
    assert row.interval == 60.0 and row.kwargs == {"api_token": "tok-12345", "n": 1} and row.args == []
    reader = staff("view_periodictask", "view_task_arguments", name="reader")
    assert "tok-12345" in reader.get(f"{URL}{row.pk}/change/").content.decode()
