"""Celery's AsyncResult attributes: children, forget(), name, args, kwargs, as_tuple(), .info during RETRY..."""

from __future__ import annotations

import pytest
from django.test import override_settings

from djtasks import AsyncResult, GroupResult, group, result_from_tuple
from djtasks.exceptions import InvalidCall
from djtasks.models import TaskRecord
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, flaky, sleep_then_record, spawn

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_result_reads_its_call_from_the_row(worker):
    process = worker("-Q", "default,hipri")
    result = add.apply_async((2,), {"y": 3}, queue="hipri")
    assert result.get(timeout=20) == 5
    assert (result.name, result.args, result.kwargs, result.queue, result.retries) == (
        "tests.testapp.tasks.add",
        [2],
        {"y": 3},
        "hipri",
        0,
    )
    assert result.worker and result.worker in process.log() or result.worker.startswith("djtasks@")
    assert result.date_done == TaskRecord.objects.get(pk=result.id).finished_at
    unknown = AsyncResult("no-such-id")
    assert (unknown.name, unknown.args, unknown.date_done, unknown.worker, unknown.children) == (
        None,
        None,
        None,
        None,
        [],
    )


def test_info_during_retry_is_the_exception_as_in_celery(worker):
    worker()
    result = flaky.apply_async(("k", 2))
    assert wait_for(lambda: result.state == "RETRY", timeout=20)
    assert isinstance(result.info, ValueError) and str(result.info) == "attempt 1 failed"
    assert "ValueError" in result.traceback
    assert result.get(timeout=20)["retries"] == 1 and result.retries == 1


def test_children_are_the_calls_a_task_made_except_those_not_added(worker):
    worker()
    parent = spawn.delay(3)
    ids = parent.get(timeout=20)
    children = parent.children
    assert [c.id for c in children] == ids[:2]  # the last was sent with add_to_parent=False
    assert all(c.parent == parent for c in children)
    assert [c.get(timeout=20) for c in children] == [0, 2]
    hidden = TaskRecord.objects.get(pk=ids[2])
    assert hidden.parent_id == parent.id and hidden.root_id == parent.id  # still its child, as in Celery
    assert {r.root_id for r in TaskRecord.objects.filter(pk__in=ids)} == {parent.id}


def test_forget_deletes_a_finished_row_and_its_parents(worker):
    worker()
    res = (add.s(1, 1) | add.s(2))()
    assert res.get(timeout=20) == 4
    res.forget()
    assert TaskRecord.objects.count() == 0 and res.state == "PENDING" and res.result is None


def test_forget_keeps_a_task_that_has_not_finished(redis_server):
    result = add.delay(1, 1)
    with pytest.raises(InvalidCall, match="has not finished"):
        result.forget()
    assert TaskRecord.objects.filter(pk=result.id).exists()


def test_as_tuple_and_result_from_tuple_round_trip(redis_server):
    res = (add.s(1, 1) | add.s(2) | add.s(3)).freeze()
    again = result_from_tuple(res.as_tuple())
    assert again == res and again.parent == res.parent and again.parent.parent == res.parent.parent
    members = group(add.s(i, i) for i in range(3)).freeze()
    assert isinstance(members, GroupResult)
    restored = result_from_tuple(((members.id, None), [r.as_tuple() for r in members.results]))
    assert isinstance(restored, GroupResult) and [r.id for r in restored] == [r.id for r in members]
    assert result_from_tuple(res) is res


def test_get_of_a_finished_task_needs_no_redis(worker, monkeypatch):
    worker()
    result = add.delay(1, 2)
    assert result.get(timeout=20) == 3
    with override_settings(DJTASKS={"REDIS_URL": "redis://127.0.0.1:1/0", "SOCKET_CONNECT_TIMEOUT": 1.0}):
        assert AsyncResult(result.id).get(timeout=1) == 3


def test_a_running_task_reads_as_its_state_without_a_custom_one(worker):
    worker()
    result = sleep_then_record.delay("s", 1.5)
    assert wait_for(lambda: TaskRecord.objects.get(pk=result.id).lease_expires_at is not None, timeout=20)
    assert result.state == "PENDING" and result.info is None  # claimed, not tracking its start
    assert result.get(timeout=20) == "s"
