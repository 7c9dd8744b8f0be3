"""The django.tasks contract: an app that uses only django.tasks runs unchanged on djtasks."""

import time
from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued
from django.utils import timezone

from tests.djangoapp.signals import on_enqueued
from tests.djangoapp.tasks import async_double, broken, multiply, which_attempt
from tests.support.waiting import wait_finished

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_backend_states_its_capabilities_truthfully():
    backend = task_backends["default"]
    assert type(backend).__module__ == "djtasks.backend"
    assert backend.supports_defer and backend.supports_get_result and backend.supports_priority
    assert backend.supports_async_task


def test_enqueue_returns_a_ready_result_that_refreshes_to_successful(worker):
    worker()
    result = multiply.enqueue(6, 7)
    assert result.status == TaskResultStatus.READY
    assert result.args == [6, 7] and result.backend == "default"
    wait_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.started_at and result.finished_at and result.last_attempted_at


def test_get_result_by_id_and_mismatch(redis_server):
    result = multiply.enqueue(1, 2)
    fetched = multiply.get_result(result.id)
    assert fetched.id == result.id and fetched.status == TaskResultStatus.READY
    assert default_task_backend.get_result(result.id).args == [1, 2]
    with pytest.raises(TaskResultMismatch):
        broken.get_result(result.id)
    with pytest.raises(TaskResultDoesNotExist):
        multiply.get_result("missing")


def test_failures_carry_errors_with_class_path_and_traceback(worker):
    worker()
    result = wait_finished(broken.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.KeyError"
    assert result.errors[0].exception_class is KeyError
    assert "KeyError" in result.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_takes_context_gets_its_task_result(worker):
    worker()
    result = wait_finished(which_attempt.enqueue("ctx"))
    assert result.return_value == {"label": "ctx", "attempt": 1, "id": result.id}


def test_async_functions_run(worker):
    worker()
    assert wait_finished(async_double.enqueue(21)).return_value == 42


def test_using_priority_queue_and_run_after(worker):
    from djtasks.models import TaskRecord

    worker("-Q", "default,special")
    later = timezone.now() + timedelta(seconds=1.5)
    result = multiply.using(priority=20, queue_name="special", run_after=later).enqueue(2, 2)
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.priority, row.queue) == (20, "special") and row.eta == later
    wait_finished(result)
    assert result.started_at >= later
    assert result.return_value == 4


def test_the_three_signals_are_sent(worker, tmp_path, monkeypatch):
    ledger = tmp_path / "signals.txt"
    monkeypatch.setenv("DJTASKS_SIGNAL_LEDGER", str(ledger))
    worker(env={"DJTASKS_SIGNAL_LEDGER": str(ledger)})
    task_enqueued.connect(on_enqueued)
    try:
        result = wait_finished(multiply.enqueue(3, 3))
    finally:
        task_enqueued.disconnect(on_enqueued)

    def kinds():
        lines = [line.split() for line in ledger.read_text().splitlines() if result.id in line]
        return [(kind, status) for kind, _, status, _ in lines]

    # task_finished is sent after the outcome is committed and acked: wait for it.
    deadline = time.monotonic() + 10
    while len(kinds()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kinds() == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]
