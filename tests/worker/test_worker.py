"""End to end: `manage.py taskworker` as a real subprocess, the test database and Redis."""

import signal
import time

import psutil
import pytest
from django.db import transaction
from django.test import Client

from djtasks import AsyncResult
from djtasks.exceptions import NotRegistered
from djtasks.exceptions import TimeoutError as ResultTimeout
from djtasks.models import TaskRecord
from tests.support.waiting import wait_for
from tests.testapp.tasks import (
    add,
    die,
    fail,
    progressing,
    quiet,
    record,
    sleep_then_record,
    tracked_sleep,
    unserializable,
)

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_view_enqueues_in_its_transaction_and_the_worker_runs_it(worker):
    worker()
    response = Client().post("/signup/", {"text": "hello world"})
    task_id = response.json()["task_id"]
    assert AsyncResult(task_id).get(timeout=20) == len("hello world")
    record_ = TaskRecord.objects.get(pk=task_id)
    assert record_.state == "SUCCESS" and record_.attempts == 1 and record_.worker
    assert record_.started_at and record_.finished_at and record_.enqueued_at <= record_.started_at


def test_a_rolled_back_view_runs_nothing(worker, ledger):
    worker()
    response = Client().post("/signup/", {"text": "x", "fail": "1"})
    assert response.status_code == 500
    assert TaskRecord.objects.count() == 0
    marker = record.delay("after")
    assert marker.get(timeout=20) == "after"
    assert TaskRecord.objects.count() == 1


def test_get_returns_the_value_and_reraises_failures(worker):
    worker()
    assert add.delay(4, 4).get(timeout=20) == 8
    result = fail.delay("kaput")
    with pytest.raises(ValueError, match="kaput") as info:
        result.get(timeout=20)
    assert "Remote traceback" in "".join(info.value.__notes__)
    assert result.state == "FAILURE" and result.failed()
    assert isinstance(result.get(timeout=1, propagate=False), ValueError)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.exception_type == "builtins.ValueError" and row.exception_message == "kaput"
    assert "raise ValueError(message)" in row.traceback and "Traceback" in row.traceback
    assert row.errors[0]["attempt"] == 1 and row.errors[0]["exception_type"] == "builtins.ValueError"


def test_a_non_json_return_value_is_a_failure_that_says_so(worker):
    worker()
    result = unserializable.delay()
    with pytest.raises(TypeError, match="not JSON serializable"):
        result.get(timeout=20)


def test_ignore_result_stores_no_value(worker):
    worker()
    result = quiet.delay()
    assert result.get(timeout=20) is None
    assert TaskRecord.objects.get(pk=result.id).state == "SUCCESS"


def test_get_times_out(redis_server):
    result = add.delay(1, 1)  # no worker runs it
    with pytest.raises(ResultTimeout):
        result.get(timeout=0.3)
    assert issubclass(ResultTimeout, TimeoutError)


def test_track_started_shows_started_while_running(worker):
    worker()
    result = tracked_sleep.delay(1.5)
    assert wait_for(lambda: result.state == "STARTED", timeout=10)
    assert result.get(timeout=20) == 1.5


def test_unknown_task_name_fails_the_task_and_the_worker_keeps_running(worker):
    proc = worker()
    row = TaskRecord.objects.create(id="ghost", task_name="no.such.task", args=[], kwargs={})
    assert row.pk == "ghost"
    with pytest.raises(NotRegistered, match="not registered"):
        AsyncResult("ghost").get(timeout=20)
    assert add.delay(1, 2).get(timeout=20) == 3
    assert proc.process.poll() is None


def test_redis_down_during_enqueue_then_back_runs_the_task(worker, redis_server):
    worker()
    assert add.delay(0, 1).get(timeout=20) == 1
    redis_server.stop()
    with transaction.atomic():
        result = add.delay(20, 22)  # the caller does not fail
    time.sleep(1.0)
    redis_server.start()
    assert result.get(timeout=30) == 42


def test_sigterm_is_a_warm_shutdown(worker, ledger):
    proc = worker("-c", "1")
    result = sleep_then_record.delay("warm", 2)
    assert wait_for(lambda: "start warm" in ledger.read_text(), timeout=15)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "end warm" in ledger.read_text()
    assert result.state == "SUCCESS"


def test_a_second_sigterm_is_a_cold_shutdown_that_hands_the_task_back(worker, ledger):
    proc = worker("-c", "1")
    result = sleep_then_record.delay("cold", 30)
    assert wait_for(lambda: "start cold" in ledger.read_text(), timeout=15)
    proc.signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 1
    assert TaskRecord.objects.get(pk=result.id).state == "PENDING"
    assert result.id not in proc.log() or "handing back" in proc.log()


def test_a_killed_child_is_replaced_and_its_task_runs_again(worker, ledger):
    proc = worker("-c", "1")
    result = die.delay("k1")
    assert result.get(timeout=30) == "survived"
    row = TaskRecord.objects.get(pk=result.id)
    assert row.attempts == 2
    assert "died" in proc.log()
    assert len(psutil.Process(proc.pid).children()) == 1


def test_an_idle_worker_starts_a_new_task_promptly(worker):
    worker("-c", "1")
    add.delay(0, 0).get(timeout=20)
    timings = []
    for i in range(20):
        started = time.perf_counter()
        add.delay(i, i).get(timeout=5)
        timings.append(time.perf_counter() - started)
    # Not a speed assertion: a task must not wait for a polling interval (1 s) to be noticed.
    assert sorted(timings)[10] < 0.5


def test_a_task_reports_progress_and_sees_its_own_attempt(worker):
    worker()
    result = progressing.delay(4)
    assert result.get(timeout=20) == {"attempt": 1, "id": result.id}
    assert result.progress["current"] == 4 and result.progress["percent"] == 100.0
    assert result.progress["message"] == "step 4"


def test_report_progress_outside_a_task_does_nothing():
    from djtasks import report_progress

    assert report_progress(1, 2) is False


def test_sigterm_while_children_are_being_spawned_stops_promptly(worker):
    proc = worker("-c", "2")
    assert wait_for(lambda: "starting" in proc.log(), timeout=30, interval=0.002)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 8  # not the 10 s shutdown grace of the test settings


def test_tasks_a_slow_task_sends_back_run_as_their_first_attempt(worker, ledger):
    """A slow task sends the rest of its batch back to the queue for idle children. Those tasks never
    began (no worker died, no lease was lost), so their next claim is still their first attempt."""
    proc = worker("-c", "1")
    handed_back: list[str] = []
    for _ in range(5):  # under load, the batch's fast warm-up may be too slow to make the child prefetch
        assert add.delay(0, 0).get(timeout=20) == 0  # a fast task: the child claims batches (PREFETCH) again
        with transaction.atomic():
            sleep_then_record.delay("slow", 0.3)
            # Deeper than PREFETCH (16), so the child claims a batch: the slow task and fast ones behind it.
            results = [progressing.delay(1) for _ in range(20)]
        assert [r.get(timeout=30)["attempt"] for r in results] == [1] * 20  # as each task saw it
        rows = TaskRecord.objects.filter(pk__in=[r.id for r in results])
        assert [(row.attempts, len(row.worker_ids)) for row in rows] == [(1, 1)] * 20
        handed_back = [r.id for r in results if proc.log().count(f"[{r.id}] received") > 1]
        if handed_back:
            break
    assert handed_back, "no round had a batch sent back behind its slow task"
