"""Durable revoke: a revoked task never starts; terminate stops a running one."""

import time

import pytest

from djtasks import AsyncResult, revoke
from djtasks.exceptions import TaskRevoked
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, record, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_task_revoked_while_no_worker_is_online_never_runs(worker, ledger):
    queued = record.delay("queued")
    delayed = record.apply_async(("delayed",), countdown=1)
    assert revoke(queued.id) == "revoked"
    assert delayed.revoke() == "revoked"
    assert get_broker().known([queued.id, delayed.id]) == [False, False]
    worker()
    assert add.delay(1, 1).get(timeout=20) == 2
    time.sleep(1.5)
    assert "queued" not in ledger.read_text() and "delayed" not in ledger.read_text()
    assert TaskRecord.objects.get(pk=queued.id).state == "REVOKED"
    with pytest.raises(TaskRevoked):
        queued.get(timeout=1)


def test_a_revoked_message_still_in_redis_is_refused_by_the_compare_and_set(worker, ledger, redis_server):
    result = record.delay("stale")
    # Revoke only in the database, as if Redis had been unreachable at the time.
    TaskRecord.objects.filter(pk=result.id).update(state="REVOKED")
    worker()
    assert add.delay(2, 2).get(timeout=20) == 4
    assert wait_for(lambda: get_broker().known([result.id]) == [False], timeout=10)
    assert "stale" not in ledger.read_text()


def test_terminate_kills_the_running_task_and_the_worker_carries_on(worker, ledger):
    proc = worker("-c", "1")
    result = sleep_then_record.delay("victim", 30)
    assert wait_for(lambda: "start victim" in ledger.read_text())
    assert result.revoke(terminate=True) == "revoked; terminating it"
    assert wait_for(
        lambda: (
            TaskRecord.objects.get(pk=result.id).finished_at is not None
            and TaskRecord.objects.get(pk=result.id).lease_expires_at is None
        ),
        timeout=20,
    )
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "REVOKED" and row.exception_type == "djtasks.exceptions.Terminated"
    assert "end victim" not in ledger.read_text()
    assert add.delay(3, 3).get(timeout=20) == 6
    assert proc.process.poll() is None


def test_revoking_a_running_task_without_terminate_discards_its_result(worker, ledger):
    worker("-c", "1")
    result = sleep_then_record.delay("runs-on", 1.5)
    assert wait_for(lambda: "start runs-on" in ledger.read_text())
    assert "discarded" in revoke(result.id)
    assert wait_for(lambda: "end runs-on" in ledger.read_text())
    time.sleep(0.5)
    assert TaskRecord.objects.get(pk=result.id).state == "REVOKED"
    assert AsyncResult(result.id).state == "REVOKED"


def test_revoking_finished_or_unknown_tasks_says_so(worker):
    worker()
    done = add.delay(1, 2)
    done.get(timeout=20)
    assert revoke(done.id) == "already SUCCESS"
    assert revoke("nope") == "unknown"
