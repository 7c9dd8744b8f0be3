"""The dashboard: counts, charts, per-task percentiles, queues with the oldest wait, dead letters."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from djtasks.admin.stats import _interpolate, per_task, queues, throughput
from djtasks.core.message import Message
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_server")]


def finished(task_id, name, state, seconds, ago=timedelta(minutes=5)):
    end = timezone.now() - ago
    return TaskRecord.objects.create(
        id=task_id, task_name=name, state=state, finished_at=end, started_at=end - timedelta(seconds=seconds)
    )


def test_per_task_counts_failure_rate_and_percentiles_over_the_last_day():
    for i in range(1, 11):
        finished(f"a{i}", "app.a", "SUCCESS" if i <= 8 else "FAILURE", i)
    finished("old", "app.a", "FAILURE", 99, ago=timedelta(days=2))
    finished("revoked", "app.b", "REVOKED", 1)
    [a] = per_task(timezone.now() - timedelta(days=1))
    assert (a.name, a.total, a.failed, a.failure_rate) == ("app.a", 10, 2, 20.0)
    assert a.p50 == pytest.approx(5.5, abs=0.01) and a.p95 == pytest.approx(9.55, abs=0.01)


def test_percentiles_interpolate_like_percentile_cont():
    assert _interpolate({1: 2.0, 2: 3.0}, 4, 0.5) == 2.5 and _interpolate({0: 7.0}, 1, 0.95) == 7


def test_throughput_buckets_successes_and_failures_by_minute():
    finished("ok", "app.a", "SUCCESS", 1, ago=timedelta(minutes=2))
    finished("bad", "app.a", "FAILURE", 1, ago=timedelta(minutes=2))
    buckets = throughput(timezone.now(), minutes=True)
    assert len(buckets) == 60 and sum(b.succeeded for b in buckets) == 1 and sum(b.failed for b in buckets) == 1


def test_queues_report_depth_and_the_age_of_the_oldest_waiting_task():
    TaskRecord.objects.create(id="waiting", task_name="app.a", enqueued_at=timezone.now() - timedelta(minutes=3))
    get_broker().publish([(Message("waiting", "default", 0), 0)])
    [default] = queues(timezone.now())
    assert default.ready == 1 and 170 < default.oldest_age < 240


def test_the_page_shows_states_tasks_dead_letters_and_refreshes_itself():
    finished("ok", "app.visible", "SUCCESS", 1)
    DeadLetter.objects.create(task_id="x", reason="task 'gone' is not registered")
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_taskrecord"))
    client = Client()
    client.force_login(user)
    page = client.get("/admin/djtasks/dashboard/").content.decode()
    assert "app.visible" in page and "is not registered" not in page, "dead letters take their own permission"
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    user = User.objects.get(pk=user.pk)  # a fresh permission cache
    client.force_login(user)
    page = client.get("/admin/djtasks/dashboard/").content.decode()
    assert "app.visible" in page and "is not registered" in page and "djtasks/dashboard.js" in page
    assert "No worker is online" in page
    partial = client.get("/admin/djtasks/dashboard/?partial=1").content.decode()
    assert "app.visible" in partial and "<html" not in partial
    assert 'href="/admin/djtasks/dashboard/"' in client.get("/admin/").content.decode()


def test_the_page_needs_the_view_permission_on_tasks_and_answers_a_post_with_405():
    User.objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.login(username="nobody", password="pw")
    assert client.get("/admin/djtasks/dashboard/").status_code == 403
    assert client.post("/admin/djtasks/dashboard/").status_code == 405
