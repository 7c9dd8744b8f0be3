"""Unique tasks: one unfinished row per task name and key, decided by the database, across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from djtasks import AsyncResult, chain, send_task
from djtasks.calling.revoke import revoke
from djtasks.core.conf import get_settings
from djtasks.exceptions import InvalidCall
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.maintenance import expire_results
from tests.support import ledger as ledgers
from tests.support.waiting import wait_for
from tests.support.workers import ROOT
from tests.testapp.gated_tasks import send_invoice, unique_fail, unique_flaky, unique_work
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True)]


def rows(task) -> list[TaskRecord]:
    return list(TaskRecord.objects.filter(task_name=task.registered_name).order_by("enqueued_at"))


def enqueuers(redis_url: str, call: str, processes: int, threads: int) -> list[dict[str, str]]:
    """Run `processes` processes of `threads` threads that all make the call at the same instant."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "DJTASKS_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    start_at = time.time() + 6.0  # every process has started Django and connected by then
    commands = [sys.executable, "-m", "tests.support.enqueuers", call, str(threads), str(start_at)]
    procs = [
        subprocess.Popen(commands, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(processes)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err.decode()[-3000:]
        results += [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return results


# Races ---------------------------------------------------------------------------------------


def test_20_threads_in_3_processes_enqueue_the_same_unique_key_into_one_row(redis_server):
    results = enqueuers(redis_server.url, "invoice", processes=3, threads=20)
    assert len(results) == 60 and not [r for r in results if "error" in r], results
    assert len({r["id"] for r in results}) == 1
    [row] = rows(unique_work)
    assert row.id == results[0]["id"] and row.keys["unique"]["key"] == "invoice:42"
    assert get_broker().duplicates(row.id)[0] == 59


def test_the_default_key_is_the_arguments_across_processes_too(redis_server):
    results = enqueuers(redis_server.url, "arguments", processes=3, threads=5)
    assert len({r.get("id") for r in results}) == 1 and len(rows(unique_work)) == 1


def test_an_open_transaction_holds_the_key_until_it_commits(redis_server):
    """A second enqueuer waits for the first one's transaction, then gets its row."""
    first: dict[str, str] = {}
    inserted = threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                first["id"] = unique_work.apply_async(("held",), unique_key="open-tx").id
                inserted.set()
                time.sleep(1.0)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert inserted.wait(10)
    began = time.monotonic()
    second = unique_work.apply_async(("other",), unique_key="open-tx")
    waited = time.monotonic() - began
    thread.join()
    assert second.id == first["id"] and waited > 0.5
    assert len(rows(unique_work)) == 1


def test_a_rolled_back_enqueue_holds_no_key(redis_server):
    """The second enqueuer waits for the first, which rolls back: the second writes its own row."""
    first: dict[str, str] = {}
    inserted = threading.Event()

    def roll_back() -> None:
        try:
            with transaction.atomic():
                first["id"] = unique_work.apply_async(("rolled",), unique_key="rollback").id
                inserted.set()
                time.sleep(0.8)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=roll_back)
    thread.start()
    assert inserted.wait(10)
    second = unique_work.apply_async(("kept",), unique_key="rollback")
    thread.join()
    assert second.id != first["id"]
    assert [(r.id, r.args) for r in rows(unique_work)] == [(second.id, ["kept"])]


# What holds the key, and what gives it up ----------------------------------------------------


@pytest.mark.parametrize(
    ("state", "leased", "holds"),
    [
        ("PENDING", False, True),  # waiting (or scheduled: see below)
        ("PENDING", True, True),  # running (a task that does not track its start)
        ("STARTED", True, True),
        ("RETRY", False, True),
        ("SUCCESS", False, False),
        ("FAILURE", False, False),
        ("REVOKED", False, False),
    ],
)
def test_an_unfinished_row_holds_the_key_and_a_finished_one_gives_it_up(redis_server, state, leased, holds):
    first = unique_work.apply_async(("x",), countdown=600)  # scheduled
    lease = timezone.now() + timedelta(seconds=30) if leased else None
    TaskRecord.objects.filter(pk=first.id).update(state=state, lease_expires_at=lease)
    second = unique_work.delay("x")
    assert (second.id == first.id) is holds
    assert len(rows(unique_work)) == (1 if holds else 2)
    if not holds:  # the finished row gave its key to the new one, and keeps its record of it
        old = TaskRecord.objects.get(pk=first.id)
        assert old.unique_lock is None and old.keys["unique"]["key"].startswith("args:")


def test_a_duplicate_returns_the_existing_tasks_result_object(redis_server):
    first = unique_work.delay("result")
    second = unique_work.delay("result")
    assert isinstance(second, AsyncResult) and second.id == first.id and second.state == "PENDING"
    count, last = get_broker().duplicates(first.id)
    assert count == 1 and abs(last - time.time()) < 5


def test_the_window_passing_lets_a_new_row_in(redis_server):
    # A 1.5 s window: a 0.3 s one once passed between the first two calls on a loaded machine.
    began = time.monotonic()
    first = unique_work.apply_async(("w",), unique_for=1.5)
    opened_by = time.monotonic()  # the window opened in the first call
    assert unique_work.apply_async(("w",), unique_for=1.5).id == first.id
    assert time.monotonic() - began < 1.5  # (else the call above proved nothing)
    time.sleep(max(0.0, opened_by + 1.6 - time.monotonic()))
    third = unique_work.apply_async(("w",), unique_for=1.5)
    assert third.id != first.id
    assert TaskRecord.objects.get(pk=first.id).state == "PENDING"  # still waiting: the window alone passed


def test_the_default_key_is_the_task_name_and_its_arguments(redis_server):
    a = unique_work.apply_async(kwargs={"key": "k", "seconds": 0})
    assert unique_work.apply_async(kwargs={"seconds": 0, "key": "k"}).id == a.id  # keyword order does not count
    assert unique_work.delay("k").id != a.id  # positional and keyword arguments are not the same call
    assert unique_work.apply_async(kwargs={"key": "k", "seconds": 0.0}).id != a.id  # 0.0 is not 0 in JSON
    assert add.apply_async(kwargs={"x": 1, "y": 1}, unique_for=60).id != a.id  # another task name


def test_a_declared_key_template_and_a_calls_own_key(redis_server):
    first = send_invoice.delay(42, note="a")
    assert send_invoice.delay(42, note="b").id == first.id  # invoice:{invoice_id}
    assert send_invoice.delay(43).id != first.id
    assert send_invoice.apply_async((44,), unique_key="invoice:42").id == first.id  # the call's key wins
    assert (
        add.apply_async((1, 2), unique_key="sum", unique_for=60).id
        == add.apply_async((3, 4), unique_key="sum", unique_for=60).id
    )


def test_a_retrying_task_keeps_its_key_and_a_finished_one_releases_it(worker, ledger):
    worker("-c", "1")
    first = unique_flaky.delay("flaky")
    assert wait_for(lambda: TaskRecord.objects.get(pk=first.id).state == "RETRY", timeout=30)
    assert unique_flaky.delay("flaky").id == first.id
    assert first.get(timeout=30) == "flaky"
    assert unique_flaky.delay("flaky").id != first.id


def test_a_running_task_keeps_its_key_and_a_failure_releases_it(worker, ledger):
    worker("-c", "1")
    running = unique_work.delay("running", 1.5)
    assert wait_for(lambda: "start running" in ledger.read_text(), timeout=30)
    assert unique_work.delay("running", 1.5).id == running.id
    running.get(timeout=30)
    failing = unique_fail.delay("f")
    with pytest.raises(ValueError):
        failing.get(timeout=30)
    assert unique_fail.delay("f").id != failing.id  # released at the end, whatever the end (as celery-once)


def test_revoke_releases_the_key(redis_server):
    first = unique_work.delay("revoked")
    assert revoke(first.id) == "revoked"
    assert unique_work.delay("revoked").id != first.id


def test_row_expiry_releases_the_key(redis_server, settings):
    first = unique_work.delay("expiring")
    old = timezone.now() - timedelta(days=2)
    TaskRecord.objects.filter(pk=first.id).update(state="SUCCESS", finished_at=old)
    assert expire_results(get_settings()) == 1
    assert unique_work.delay("expiring").id != first.id


def test_the_key_holds_with_redis_down_and_the_row_runs_once_it_is_back(worker, ledger, redis_server):
    redis_server.stop()
    try:
        first = unique_work.delay("offline")
        assert unique_work.delay("offline").id == first.id  # never published, and still holding the key
        assert len(rows(unique_work)) == 1
    finally:
        redis_server.start()
    worker("-c", "1")
    assert first.get(timeout=30) == "offline"  # the outbox sweep published it
    assert sum(e.kind == "start" for e in ledgers.read(ledger)) == 1
    assert unique_work.delay("offline").id != first.id


# Wrong calls -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_key": "k"}, "unique_key needs a window: pass unique_for= with it"),
        ({"unique_key": "k", "unique_for": 0}, "unique_for must be a positive number of seconds"),
        ({"unique_key": "k", "unique_for": float("nan")}, "unique_for must be a positive number"),
        ({"unique_key": "", "unique_for": 5}, "unique_key must be a non-empty string or an integer, not ''"),
        ({"unique_key": None, "unique_for": True}, "unique_for must be a positive number"),
        ({"unique_key": 1.5, "unique_for": 5}, "unique_key must be a non-empty string or an integer, not float"),
        ({"unique_key": b"k", "unique_for": 5}, "not bytes"),
        ({"unique_key": True, "unique_for": 5}, "not bool"),
        ({"unique_for": 5, "link": add.s(1)}, "cannot carry link"),
    ],
)
def test_a_wrong_unique_option_is_refused_and_nothing_is_written(redis_server, options, message):
    with pytest.raises(InvalidCall, match=message.replace("(", r"\(")):
        add.apply_async((1, 2), **options)
    assert not TaskRecord.objects.exists()


def test_a_unique_step_can_only_end_a_chain(redis_server):
    with pytest.raises(InvalidCall, match="can only be the last step of a chain"):
        chain(add.s(1, 1), unique_work.s(), add.s(1)).apply_async()
    assert not TaskRecord.objects.exists()
    chain(add.s(1, 1), unique_work.s()).apply_async()
    assert TaskRecord.objects.count() == 1


def test_a_long_or_unprintable_key_is_kept_as_its_digest(redis_server):
    long = unique_work.apply_async(("l",), unique_key="x" * 500, unique_for=60)
    assert TaskRecord.objects.get(pk=long.id).keys["unique"]["key"].startswith("sha256:")
    assert unique_work.apply_async(("l",), unique_key="x" * 500, unique_for=60).id == long.id
    assert unique_work.apply_async(("l",), unique_key="x" * 499, unique_for=60).id != long.id
    odd = unique_work.apply_async(("l",), unique_key="line\nbreak", unique_for=60)
    assert TaskRecord.objects.get(pk=odd.id).keys["unique"]["key"].startswith("sha256:")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises writers; no isolation levels")
def test_under_repeatable_read_a_racing_enqueue_raises_instead_of_waiting(redis_server):
    inserted, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                unique_work.apply_async(("rr",), unique_key="rr")
                inserted.set()
                done.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert inserted.wait(10)
    try:
        with pytest.raises(OperationalError, match="could not serialize"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            threading.Timer(0.5, done.set).start()
            unique_work.apply_async(("rr",), unique_key="rr")
    finally:
        done.set()
        thread.join()
    assert len(rows(unique_work)) == 1


def test_send_task_of_a_task_not_declared_here_cannot_apply_unique_options(redis_server):
    with pytest.raises(InvalidCall, match="unique_key"):
        send_task("elsewhere.tasks.only_in_workers", unique_key="k", unique_for=60)
    assert not TaskRecord.objects.exists()
