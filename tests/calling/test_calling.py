"""apply_async's execution options, routing, priorities and results, against real workers."""

import datetime as dt
import time

import pytest
from django.test import override_settings
from django.utils import timezone

from djtasks import AsyncResult, send_task
from djtasks.core.conf import get_settings
from djtasks.core.options import ExecutionOptions, from_celery_priority
from djtasks.exceptions import ImproperlyDeclared, TaskRevoked
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.maintenance import expire_results
from tests.support.waiting import wait_for
from tests.testapp.tasks import (
    add,
    declared_queue,
    quiet,
    record,
    routed_exact,
    routed_glob,
    short_lived,
    show_request,
)

pytestmark = [pytest.mark.django_db(transaction=True)]


def ran(ledger):
    return [line.split()[0] for line in ledger.read_text().splitlines()]


def test_eta_runs_at_its_time_once_however_many_workers(worker, ledger):
    worker()
    worker()
    # Both up first (a parent's first heartbeat follows its children's fork): at load, two
    # workers' start-up once took longer than the eta, and that wait was counted as lateness.
    assert wait_for(lambda: len(get_broker().workers()) >= 2, timeout=60)
    eta = timezone.now() + dt.timedelta(seconds=2)
    results = [record.apply_async((f"eta{i}",), eta=eta) for i in range(6)]
    assert [r.get(timeout=30) for r in results] == [f"eta{i}" for i in range(6)]
    assert sorted(ran(ledger)) == [f"eta{i}" for i in range(6)]  # each exactly once
    for row in TaskRecord.objects.filter(pk__in=[r.id for r in results]):
        lateness = (row.started_at - eta).total_seconds()
        assert 0 <= lateness < 2.5  # promised within 1 s; generous for a loaded machine


def test_a_naive_eta_is_read_in_the_project_time_zone():
    with override_settings(TIME_ZONE="Europe/Paris"):
        naive = dt.datetime(2030, 6, 1, 12, 0)
        options = ExecutionOptions.build(eta=naive)
        assert options.eta.utcoffset() == dt.timedelta(hours=2)
        assert options.eta == dt.datetime(2030, 6, 1, 10, 0, tzinfo=dt.UTC)


def test_countdown_and_eta_together_are_refused():
    with pytest.raises(ImproperlyDeclared, match="countdown or eta"):
        add.apply_async((1, 1), countdown=1, eta=timezone.now())


def test_an_expired_task_does_not_run_and_is_revoked_with_the_reason(worker, ledger):
    result = record.apply_async(("late",), expires=0.2)
    declared = short_lived.delay()  # @task(expires=0.5)
    time.sleep(1.0)
    worker()
    with pytest.raises(TaskRevoked, match="expired"):
        result.get(timeout=20)
    with pytest.raises(TaskRevoked, match="expired"):
        declared.get(timeout=20)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "REVOKED" and "expired at" in row.exception_message
    assert "late" not in ran(ledger)


def test_expires_accepts_a_datetime(worker):
    worker()
    when = timezone.now() + dt.timedelta(minutes=5)
    result = add.apply_async((1, 2), expires=when)
    assert result.get(timeout=20) == 3
    assert TaskRecord.objects.get(pk=result.id).expires_at == when


def test_task_id_queue_and_headers_reach_the_row_and_the_request(worker):
    worker("-Q", "default,special")
    result = show_request.apply_async(task_id="my-id", queue="special", headers={"trace": "t-1"}, countdown=0.2)
    assert result.id == "my-id"
    value = result.get(timeout=20)
    assert value["headers"] == {"trace": "t-1"} and value["queue"] == "special"
    assert value["root_id"] == "my-id" and value["parent_id"] == "" and value["eta"] is not None
    assert TaskRecord.objects.get(pk="my-id").queue == "special"


def test_routes_send_tasks_to_queues_by_name_or_pattern():
    assert TaskRecord.objects.get(pk=routed_glob.delay().id).queue == "routed"
    assert TaskRecord.objects.get(pk=routed_exact.delay().id).queue == "exact"
    assert TaskRecord.objects.get(pk=declared_queue.delay().id).queue == "declared"
    assert TaskRecord.objects.get(pk=routed_glob.apply_async(queue="chosen").id).queue == "chosen"


def test_a_task_for_a_queue_no_worker_consumes_waits_then_runs(worker):
    worker()
    result = routed_glob.delay()
    assert add.delay(1, 1).get(timeout=20) == 2
    time.sleep(0.5)
    assert result.state == "PENDING"
    worker("-Q", "routed")
    assert result.get(timeout=20) == "glob"


def test_a_higher_priority_task_starts_before_a_lower_one_that_waits(worker, ledger):
    record.apply_async(("low",), priority=-50)
    record.apply_async(("mid",))
    record.apply_async(("high",), priority=50)
    record.apply_async(("celery9",), celery_priority=9)
    worker("-c", "1")
    assert wait_for(lambda: len(ran(ledger)) == 4)
    assert ran(ledger) == ["celery9", "high", "mid", "low"]


def test_celery_priorities_map_onto_the_django_scale():
    assert [from_celery_priority(p) for p in (0, 4, 5, 9)] == [-100, -11, 11, 100]
    with pytest.raises(ImproperlyDeclared):
        add.apply_async((1, 1), celery_priority=10)
    with pytest.raises(ImproperlyDeclared, match="not both"):
        add.apply_async((1, 1), celery_priority=1, priority=1)


def test_ignore_result_per_call_keeps_the_row_without_the_value(worker):
    worker()
    result = add.apply_async((2, 3), ignore_result=True)
    assert result.get(timeout=20) is None
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "SUCCESS" and row.result is None and row.finished_at and row.ignore_result
    assert quiet.delay().get(timeout=20) is None


def test_send_task_by_name(worker):
    worker()
    assert send_task("tests.testapp.tasks.add", args=(20, 22)).get(timeout=20) == 42
    unknown = send_task("elsewhere.tasks.job", kwargs={"a": 1}, queue="remote")
    row = TaskRecord.objects.get(pk=unknown.id)
    assert row.task_name == "elsewhere.tasks.job" and row.queue == "remote" and row.kwargs == {"a": 1}


def test_old_finished_rows_are_deleted_but_unfinished_ones_kept(redis_server):
    old = TaskRecord.objects.create(
        id="old", task_name="x", state="SUCCESS", finished_at=timezone.now() - dt.timedelta(days=2)
    )
    fresh = TaskRecord.objects.create(id="fresh", task_name="x", state="SUCCESS", finished_at=timezone.now())
    waiting = TaskRecord.objects.create(id="waiting", task_name="x", enqueued_at=timezone.now() - dt.timedelta(days=3))
    assert expire_results(get_settings()) == 1
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {fresh.pk, waiting.pk}
    assert old.pk not in set(TaskRecord.objects.values_list("pk", flat=True))


def test_workers_enforce_result_expires(worker):
    worker(env={"DJTASKS_RESULT_EXPIRES": "2"})
    result = add.delay(1, 1)
    assert result.get(timeout=20) == 2
    assert wait_for(lambda: not TaskRecord.objects.filter(pk=result.id).exists(), timeout=30)
    assert AsyncResult(result.id).state == "PENDING"  # as in Celery: an unknown id reads PENDING
