"""The admin steers the fleet: workers, queues, limits and waiting work, against real workers and Redis."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client

from djtasks import control
from djtasks.models import PeriodicTask, TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, limited, record, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True)]
FLEET = "/admin/djtasks/fleet/"


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("op", password="pw"))
    return client


def user_with(*codenames: str) -> Client:
    user = User.objects.create_user(f"u{time.monotonic_ns()}", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="djtasks", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def said(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"]) if response.context else ""


def state(task_id: str) -> str:
    return TaskRecord.objects.get(pk=task_id).state


def test_a_paused_queue_waits_on_every_worker_and_across_a_restart_until_resumed(
    worker, operator, ledger, fault_report
):
    first = worker("-Q", "images,default")
    second = worker("-Q", "images")
    assert wait_for(lambda: {first.name, second.name} <= set(control.workers()), timeout=30)
    response = operator.post(f"{FLEET}pause/", {"queue": "images", "next": f"{FLEET}queues/"}, follow=True)
    assert "queue images paused" in said(response)
    held = [record.apply_async((f"img{i}",), queue="images") for i in range(3)]
    assert add.delay(1, 1).get(timeout=20) == 2, "other queues go on"
    time.sleep(2.0)
    assert {state(r.id) for r in held} == {"PENDING"} and "img" not in ledger.read_text()
    first.kill()
    worker("-n", "again@%h", "-Q", "images")  # a restarted worker honours the pause too
    time.sleep(2.0)
    assert {state(r.id) for r in held} == {"PENDING"}
    page = operator.get(f"{FLEET}queues/").content.decode()
    row = re.search(r'data-queue="images">(.*?)</tr>', page, re.S).group(1)
    assert "Paused" in row
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert re.fullmatch(r"[\d.]+ (ms|s|min)", cells[5]), f"the oldest waiting task's age is shown: {cells}"
    resumed = time.monotonic()
    response = operator.post(f"{FLEET}resume/", {"queue": "images"}, follow=True)
    assert "queue images resumed" in said(response)
    assert [r.get(timeout=20) for r in held] == ["img0", "img1", "img2"]
    runs = [line.split()[0] for line in ledger.read_text().splitlines() if "img" in line]
    assert sorted(runs) == sorted(["img0", "img1", "img2"]), "each ran once"
    fault_report(
        fault="queue paused; 2 workers, one SIGKILLed and restarted",
        enqueued=3,
        lost=0,
        ran_twice=0,
        recovery_s=time.monotonic() - resumed,
        notes="none taken while paused (4 s); all ran after resume",
    )
    entries = LogEntry.objects.filter(object_id="images").order_by("action_time")
    assert [e.change_message.split(":")[0] for e in entries] == ["pause", "resume"]
    assert all(e.user.username == "op" and e.object_repr == "queue images" for e in entries)


def test_a_purge_asks_first_then_revokes_the_waiting_rows_with_a_reason_and_deletes_none(worker, operator, ledger):
    worker("-Q", "other")
    waiting = [record.apply_async((f"p{i}",), queue="bulk", countdown=i % 2 * 3600) for i in range(6)]
    get_broker().flush_publishes()
    confirm = operator.post(f"{FLEET}purge/", {"queue": "bulk"})
    assert confirm.status_code == 200 and "6 waiting task(s) of bulk will be revoked" in confirm.content.decode()
    assert {state(r.id) for r in waiting} == {"PENDING"}, "nothing changed before the confirmation"
    done = operator.post(f"{FLEET}purge/", {"queue": "bulk", "confirm": "yes"}, follow=True)
    assert "6 waiting task(s) revoked" in said(done)
    rows = TaskRecord.objects.filter(pk__in=[r.id for r in waiting])
    assert rows.count() == 6 and set(rows.values_list("state", flat=True)) == {"REVOKED"}
    assert set(rows.values_list("exception_message", flat=True)) == {"purged from queue bulk by op in the admin"}
    assert get_broker().queue_stats()["bulk"] == {"ready": 0, "scheduled": 0, "reserved": 0}
    assert LogEntry.objects.get(object_id="bulk").change_message.startswith("purge: queue bulk purged: 6")


def test_rate_and_time_limits_show_their_source_and_change_and_reset_for_every_worker(worker, operator):
    worker()
    name = "tests.testapp.tasks.limited"
    page = operator.get(f"{FLEET}limits/").content.decode()
    row = re.search(rf'data-task="{re.escape(name)}">(.*?)</tr>', page, re.S).group(1)
    assert "2/s (2/s)" in row and "declared" in row
    operator.post(f"{FLEET}rate_limit/", {"task": name, "rate": "10/m"})
    operator.post(f"{FLEET}time_limit/", {"task": name, "soft": "4", "hard": "9"})
    page = operator.get(f"{FLEET}limits/").content.decode()
    row = re.search(rf'data-task="{re.escape(name)}">(.*?)</tr>', page, re.S).group(1)
    assert row.count("runtime override") == 3 and "10/m" in row and "4 s" in row and "9 s" in row
    assert get_broker().rate_override(name) == 6000.0
    bad = operator.post(f"{FLEET}rate_limit/", {"task": name, "rate": "lots"}, follow=True)
    assert "nothing was changed" in said(bad) and get_broker().rate_override(name) == 6000.0
    operator.post(f"{FLEET}rate_limit/", {"task": name, "reset": "1"})
    operator.post(f"{FLEET}time_limit/", {"task": name, "reset": "1"})
    page = operator.get(f"{FLEET}limits/").content.decode()
    row = re.search(rf'data-task="{re.escape(name)}">(.*?)</tr>', page, re.S).group(1)
    assert "runtime override" not in row and get_broker().rate_override(name) is None
    assert LogEntry.objects.filter(object_id=name).count() == 4


def test_tasks_held_by_a_rate_limit_say_so_and_run_now_moves_a_countdown_forward(worker, operator, ledger):
    worker()
    for i in range(40):
        limited.delay(f"r{i}")  # 2/s: most of them wait for their slot, for up to 20 s
    later = record.apply_async(("later",), countdown=3600)
    # Each page is read until it shows them (a page rendered on a loaded machine may take a while).
    assert wait_for(lambda: "rate-limited until" in operator.get(f"{FLEET}scheduled/").content.decode(), timeout=20)
    page = operator.get(f"{FLEET}scheduled/").content.decode()
    assert "eta or countdown" in page and later.id in page
    listed = lambda: operator.get("/admin/djtasks/taskrecord/").content.decode()  # noqa: E731
    assert wait_for(lambda: "rate-limited until" in listed(), timeout=10), "the task list says why they wait"
    dashboard = lambda: operator.get("/admin/djtasks/dashboard/?partial=1").content.decode()  # noqa: E731
    counted = re.compile(r"\d+ rate-limited until \d\d:\d\d:\d\d")
    assert wait_for(lambda: counted.search(dashboard()), timeout=10), "the queue's delayed count says it"
    operator.post(f"{FLEET}run_now/", {"task_id": [later.id]})
    assert later.get(timeout=20) == "later"
    assert LogEntry.objects.filter(change_message__startswith="run_now").exists()


def test_worker_controls_reach_the_worker_and_the_dashboard_counts_running_tasks_from_leases(worker, operator):
    process = worker("-n", "steered@%h", "-c", "1")
    assert wait_for(lambda: process.name in control.workers(), timeout=30)
    grown = operator.post(f"{FLEET}pool_grow/", {"worker": process.name, "n": "1"}, follow=True)
    assert "pool grown by 1 to 2" in said(grown)
    added = operator.post(f"{FLEET}add_consumer/", {"worker": process.name, "queue": "extra"}, follow=True)
    assert "now consuming from 'extra'" in said(added)
    assert record.apply_async(("extra",), queue="extra").get(timeout=20) == "extra"
    running = [sleep_then_record.delay(f"s{i}", 4) for i in range(2)]
    assert wait_for(
        lambda: (
            'id="djtasks-running"' in (page := operator.get("/admin/djtasks/dashboard/").content.decode())
            and re.search(r'id="djtasks-running".*?<strong>2</strong>', page, re.S)
        ),
        timeout=20,
    )
    assert {state(r.id) for r in running} == {"PENDING"}, "track_started is off: the rows do not know"
    refused = operator.post(f"{FLEET}pool_shrink/", {"worker": "nobody@nowhere", "n": "1"}, follow=True)
    assert "is not online" in said(refused)
    down = operator.post(f"{FLEET}shutdown/", {"worker": process.name}, follow=True)
    assert "warm shutdown started" in said(down)
    assert process.wait(timeout=30) == 0
    assert [e.object_repr for e in LogEntry.objects.order_by("action_time")] == [f"worker {process.name}"] * 3


def test_each_control_takes_its_own_permission_and_the_csrf_token(worker):
    worker()
    viewer = user_with("view_taskrecord")
    for control_name in ("pause", "purge", "rate_limit", "time_limit", "shutdown", "pool_grow", "run_now"):
        assert viewer.post(f"{FLEET}{control_name}/", {"queue": "default"}).status_code == 403, control_name
    assert viewer.get(f"{FLEET}").status_code == 200 and viewer.get(f"{FLEET}pause/").status_code == 405
    pauser = user_with("view_taskrecord", "pause_queue")
    assert pauser.post(f"{FLEET}pause/", {"queue": "default"}).status_code == 302
    assert pauser.post(f"{FLEET}purge/", {"queue": "default", "confirm": "yes"}).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.create_superuser("root", password="pw"))
    assert strict.post(f"{FLEET}resume/", {"queue": "default"}).status_code == 403
    assert get_broker().paused(["default"]), "the CSRF-less request changed nothing"


def test_the_worker_filter_offers_workers_gone_offline_without_scanning_the_rows(worker, operator):
    gone = worker("-n", "gone@%h")
    assert add.delay(1, 2).get(timeout=20) == 3
    assert wait_for(lambda: gone.name in control.workers(), timeout=20)
    gone.kill()
    get_broker().forget_worker(gone.name)
    page = operator.get("/admin/djtasks/taskrecord/").content.decode()
    assert f"?worker={gone.name}" in page.replace("%40", "@")


def test_the_periodic_task_form_offers_the_registered_tasks_and_flags_one_that_is_not(operator):
    page = operator.get("/admin/djtasks/periodictask/add/").content.decode()
    assert '<select name="task"' in page and '<option value="tests.testapp.tasks.add">' in page
    row = PeriodicTask.objects.create(name="orphan", task="gone.module.task", interval=60)
    page = operator.get(f"/admin/djtasks/periodictask/{row.pk}/change/").content.decode()
    assert "gone.module.task (not registered in this process)" in page and "is not a task registered here" in page
    assert 'name="solar_event"' in page and 'name="latitude"' in page
