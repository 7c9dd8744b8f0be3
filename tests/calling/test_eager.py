"""Eager mode: delay() runs the task in the test's process when the caller's transaction commits.

The promise kept: a task never runs for a rolled-back row, in eager mode as with a worker. And
the same code runs unchanged against a real worker (test_the_same_code_runs_eagerly_and_on_a_worker).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from djtasks import AsyncResult, chain, chord, group, send_task
from djtasks.exceptions import InvalidCall
from djtasks.models import TaskRecord
from djtasks.testing import djtasks_eager, eager  # noqa: F401 - djtasks_eager is a fixture
from djtasks.transport.broker import get_broker
from tests.testapp.models import Note
from tests.testapp.tasks import (
    add,
    fail,
    flaky,
    in_custom_state,
    mul,
    note_length,
    raise_back,
    record,
    replaced_by_mul,
    spawn,
    xsum,
)

NO_REDIS = {**settings.DJTASKS, "REDIS_URL": "redis://127.0.0.1:1/0", "SOCKET_CONNECT_TIMEOUT": 1.0}


def lines(ledger):
    return ledger.read_text().splitlines()


@pytest.mark.django_db(transaction=True)
def test_delay_runs_the_task_at_once_and_returns_a_ready_result_without_redis():
    with override_settings(DJTASKS=NO_REDIS), eager():
        result = add.delay(2, 3)
        assert result.ready() and result.get(timeout=1) == 5
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.state, row.result, row.worker, row.attempts) == ("SUCCESS", 5, "eager", 1)


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_task_runs_on_commit_and_never_for_a_rollback(ledger):
    with eager():
        with transaction.atomic():
            kept = record.delay("committed")
            assert lines(ledger) == [] and kept.state == "PENDING"
        assert kept.get(timeout=1) == "committed" and lines(ledger)[0].startswith("committed")
        with pytest.raises(RuntimeError), transaction.atomic():
            lost = record.delay("rolled-back")
            raise RuntimeError("the view failed")
        with transaction.atomic():
            outer = record.delay("outer")
            try:
                with transaction.atomic():
                    record.delay("savepoint-rolled-back")
                    raise RuntimeError
            except RuntimeError:
                pass
        assert outer.get(timeout=1) == "outer"
    assert [line.split()[0] for line in lines(ledger)] == ["committed", "outer"]
    assert not TaskRecord.objects.filter(pk=lost.id).exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("djtasks_eager")
def test_under_a_testcase_transaction_the_task_runs_at_once():
    """pytest-django's db fixture (Django's TestCase) never commits: its blocks count as committed."""
    note = Note.objects.create(text="eager mode")
    assert note_length.delay(note.pk).get(timeout=1) == len("eager mode")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("djtasks_eager")
def test_workflows_retries_replacements_and_custom_states_complete_eagerly():
    assert chain(add.s(1, 1), add.s(2), mul.s(10))().get(timeout=1) == 40
    assert group(add.s(i, i) for i in range(4))().get(timeout=1) == [0, 2, 4, 6]
    assert chord((add.s(i, i) for i in range(4)), xsum.s())().get(timeout=1) == 12
    retried = flaky.delay("k", 2)
    assert retried.get(timeout=1)["retries"] == 1 and TaskRecord.objects.get(pk=retried.id).retries == 1
    assert replaced_by_mul.delay(3).get(timeout=1) == 30
    assert in_custom_state.delay("k", 0).get(timeout=1) == "done"
    assert TaskRecord.objects.get(task_name="tests.testapp.tasks.in_custom_state").reported["state"] == "PROGRESS"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("djtasks_eager")
def test_calls_made_by_an_eager_task_run_after_it_in_order():
    parent = spawn.delay(3)
    children = parent.get(timeout=1)
    rows = {r.pk: r for r in TaskRecord.objects.filter(pk__in=children)}
    assert all(rows[c].state == "SUCCESS" and rows[c].parent_id == parent.id for c in children)
    assert all(rows[c].started_at >= TaskRecord.objects.get(pk=parent.id).finished_at for c in children)


@pytest.mark.django_db(transaction=True)
def test_errors_propagate_unless_asked_not_to(ledger):
    with eager():
        with pytest.raises(ValueError, match="boom"):
            fail.delay()
        with pytest.raises(InvalidCall, match="cannot take these arguments"):
            add.delay(1)
    with eager(propagate=False):
        result = fail.delay()
        assert result.state == "FAILURE" and isinstance(result.result, ValueError)
        # A BaseException the task raises is recorded, as by a worker, and not raised at the caller.
        killed = raise_back.delay("k", "SystemExit", {"s": [120]})
        assert killed.state == "FAILURE"
        assert TaskRecord.objects.get(pk=killed.id).exception_type == "builtins.SystemExit"


@pytest.mark.django_db(transaction=True)
def test_eager_mode_publishes_nothing(redis_server):
    with eager():
        add.delay(1, 1)
    assert get_broker().queue_stats() == {} or all(not sum(s.values()) for s in get_broker().queue_stats().values())


def signup(text: str) -> tuple[AsyncResult, AsyncResult]:
    """What a view does: write data and enqueue work on it in one transaction."""
    with transaction.atomic():
        note = Note.objects.create(text=text)
        counted = note_length.delay(note.pk)
        pipeline = (add.s(len(text), 1) | mul.s(2)).apply_async()
    return counted, pipeline


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["eager", "worker"])
def test_the_same_code_runs_eagerly_and_on_a_worker(request, mode):
    if mode == "eager":
        with eager():
            counted, pipeline = signup("hello")
    else:
        request.getfixturevalue("worker")()
        counted, pipeline = signup("hello")
    assert counted.get(timeout=20) == 5 and pipeline.get(timeout=20) == 12
    assert TaskRecord.objects.filter(state="SUCCESS").count() == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("djtasks_eager")
def test_an_atomic_block_inside_a_testcase_runs_its_tasks_on_its_captured_commit(
    django_capture_on_commit_callbacks, ledger
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        result = record.delay("inside")
        assert lines(ledger) == []
    assert result.get(timeout=1) == "inside"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("djtasks_eager")
def test_eager_mode_does_not_wait_for_a_countdown_and_covers_send_task():
    assert add.apply_async((1, 2), countdown=3600).get(timeout=1) == 3
    assert send_task("tests.testapp.tasks.add", (2, 2)).get(timeout=1) == 4
