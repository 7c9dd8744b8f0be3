"""--pool threads and --pool solo: the same claims, leases and fenced outcomes, in one process."""

from __future__ import annotations

import signal

import psutil
import pytest

from djtasks import SoftTimeLimitExceeded, control
from djtasks.calling.revoke import revoke
from djtasks.models import TaskRecord
from tests.support.waiting import wait_for
from tests.testapp.tasks import sleep_then_record, soft_limited, spin_past_soft_limit, spin_uncaught, where

pytestmark = [pytest.mark.django_db(transaction=True)]


def entries(ledger) -> list[list[str]]:
    return [line.split() for line in ledger.read_text().splitlines()]


def test_the_threads_pool_runs_tasks_in_threads_of_the_worker_process_and_keeps_their_leases(worker, ledger):
    process = worker("-P", "threads", "-c", "3")
    assert wait_for(lambda: process.name in control.workers(), timeout=30)
    assert psutil.Process(process.pid).children() == [], "no child process"
    long = sleep_then_record.delay("long", 8)  # longer than the tests' 6 s lease: kept alive, not redelivered
    results = [where.delay(f"w{i}").get(timeout=30) for i in range(6)]
    assert {r["pid"] for r in results} == {process.pid}
    assert {r["thread"] for r in results} <= {"djtasks-child-0", "djtasks-child-1", "djtasks-child-2"}
    assert long.get(timeout=30) == "long"
    assert [e[0] for e in entries(ledger)].count("start") == 1, "the long task ran once"
    row = TaskRecord.objects.get(pk=long.id)
    assert row.worker == process.name and row.attempts == 1
    [status] = control.status()
    assert status["pool"] == "threads" and status["concurrency"] == 3


def test_a_thread_past_its_soft_limit_gets_the_exception_in_its_python_code(worker):
    worker("-P", "threads", "-c", "1")
    assert spin_past_soft_limit.delay().get(timeout=30) == "cleaned up: soft time limit (2 s) exceeded"


def test_a_thread_past_its_soft_limit_fails_with_a_traceback_that_shows_where_it_struck(worker):
    worker("-P", "threads", "-c", "1")
    result = spin_uncaught.delay()
    with pytest.raises(SoftTimeLimitExceeded, match=r"soft time limit \(1 s\) exceeded"):
        result.get(timeout=30)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.SoftTimeLimitExceeded"
    assert "in spin_uncaught" in row.traceback, row.traceback


def test_revoke_with_terminate_cannot_kill_a_thread_the_outcome_is_discarded(worker, ledger):
    process = worker("-P", "threads", "-c", "2")
    running = sleep_then_record.delay("victim", 3)
    assert wait_for(lambda: any(e[:2] == ["start", "victim"] for e in entries(ledger)), timeout=20)
    revoke(running.id, terminate=True)
    assert wait_for(lambda: any(e[:2] == ["end", "victim"] for e in entries(ledger)), timeout=20), "it ran on"
    assert wait_for(lambda: "cannot be killed" in process.log(), timeout=10), process.log()
    assert TaskRecord.objects.get(pk=running.id).state == "REVOKED", "its outcome was fenced off"
    assert where.delay("after").get(timeout=20)["pid"] == process.pid, "the worker goes on"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("-P", "threads", "--time-limit", "5"), "djtasks.E092"),
        (("-P", "threads", "--max-memory-per-child", "100000"), "djtasks.E093"),
        (("-P", "solo", "-c", "2"), "djtasks.E094"),
        (("-P", "solo", "--time-limit", "5"), "djtasks.E092"),
        (("--autoscale", "4,1", "-P", "solo"), "djtasks.E094"),
        (("--autoscale", "5000,2"), "djtasks.E095"),
        (("--autoscale", "x,2"), "is not MAX,MIN"),
        (("-n", "a b@%h"), "djtasks.E016"),
    ],
)
def test_what_a_pool_cannot_do_is_refused_at_start(worker, args, says):
    process = worker(*args)
    assert process.wait(timeout=30) == 1
    assert says in process.log(), process.log()


def test_the_solo_pool_runs_tasks_in_the_main_thread_of_the_worker_process(worker, ledger):
    process = worker("-P", "solo", "-c", "1")
    assert wait_for(lambda: process.name in control.workers(), timeout=30)
    assert psutil.Process(process.pid).children() == []
    assert where.delay("solo").get(timeout=20) == {"pid": process.pid, "thread": "MainThread"}
    assert soft_limited.delay().get(timeout=20) == "cleaned up", "SIGALRM works in the main thread"
    long = sleep_then_record.delay("long", 8)  # the supervisor thread keeps its lease alive meanwhile
    assert long.get(timeout=30) == "long" and [e[0] for e in entries(ledger)].count("start") == 1
    [status] = control.status()
    assert status["pool"] == "solo" and status["concurrency"] == 1
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
