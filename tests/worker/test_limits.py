"""Limits on child processes: soft and hard time limits, tasks and memory per child."""

import psutil
import pytest

from djtasks.models import TaskRecord
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, hang, leak, pid, soft_limited

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_soft_limit_raises_inside_the_task(worker):
    worker("-c", "1")
    assert soft_limited.delay().get(timeout=20) == "cleaned up"


def test_the_hard_limit_kills_and_replaces_the_child_and_records_failure(worker, ledger):
    proc = worker("-c", "1")
    before = set(proc.children()) if wait_for(lambda: len(proc.children()) == 1) else set()
    result = hang.delay("h")
    with pytest.raises(Exception, match="hard time limit"):
        result.get(timeout=30)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.TimeLimitExceeded"
    assert row.attempts == 1 and ledger.read_text().count("start h") == 1
    assert add.delay(1, 1).get(timeout=20) == 2  # the replacement child works
    assert set(proc.children()) != before


def test_the_worker_time_limit_applies_to_tasks_without_their_own(worker):
    from tests.testapp.tasks import sleep_then_record

    worker("-c", "1", "--time-limit", "1")
    result = sleep_then_record.delay("slow", 10)
    with pytest.raises(Exception, match="hard time limit"):
        result.get(timeout=30)


def test_max_tasks_per_child_recycles_children_without_losing_tasks(worker):
    worker("-c", "1", "--max-tasks-per-child", "3")
    pids = [pid.delay().get(timeout=20) for _ in range(7)]
    assert len(set(pids)) == 3  # 3 + 3 + 1
    assert TaskRecord.objects.filter(state="SUCCESS").count() == 7


def test_max_memory_per_child_recycles_after_the_task_that_crossed_it(worker, ledger):
    proc = worker("-c", "1", "--max-memory-per-child", str(120 * 1024))
    pids = [leak.delay(f"l{i}", 40).get(timeout=30) for i in range(5)]
    assert len(set(pids)) >= 2  # a child holding 120+ MiB was replaced
    assert TaskRecord.objects.filter(state="SUCCESS").count() == 5
    rss = [psutil.Process(c).memory_info().rss for c in proc.children()]
    assert all(r < 200 * 2**20 for r in rss)
