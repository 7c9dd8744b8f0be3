"""Celery's Task API: subtask, apply(), update_state(), replace() and the hooks the worker calls."""

from __future__ import annotations

import dataclasses

import pytest

from djtasks import AsyncResult, EagerResult, chain
from djtasks.exceptions import InvalidCall, TaskRevoked
from djtasks.models import TaskRecord
from tests.support.waiting import wait_for
from tests.testapp.tasks import (
    add,
    always_retry,
    bad_update,
    broken_hooks,
    fail,
    flaky,
    hooked,
    in_custom_state,
    mul,
    replaced_by_mul,
    replaced_by_other_queue,
    xsum,
)

pytestmark = [pytest.mark.django_db(transaction=True)]


def lines(ledger):
    return ledger.read_text().splitlines()


def test_subtask_is_signature():
    assert add.subtask((1, 2), countdown=3) == add.signature((1, 2), countdown=3)
    assert add.subtask((1, 2)).options == {}


def test_a_task_s_fields_stay_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        add.name = "renamed"  # type: ignore[misc]


def test_apply_runs_here_and_returns_a_ready_eager_result():
    result = add.apply((2, 3))
    assert isinstance(result, EagerResult) and result.ready() and result.successful()
    assert (result.state, result.status, result.result, result.info, result.get()) == ("SUCCESS",) * 2 + (5,) * 3
    assert (result.name, result.args, result.kwargs, result.retries) == ("tests.testapp.tasks.add", [2, 3], {}, 0)
    assert result.date_done is not None and result.traceback is None and result.as_tuple() == ((result.id, None), None)
    assert TaskRecord.objects.count() == 0  # apply() writes no row, as Celery's writes no result


def test_apply_runs_retries_inline_and_reports_the_final_state():
    result = flaky.apply(("k", 2))
    assert result.state == "SUCCESS" and result.get()["retries"] == 1 and result.retries == 1
    failed = always_retry.apply()
    assert failed.state == "FAILURE" and failed.retries == 1
    assert "MaxRetriesExceededError" in type(failed.result).__name__ and "Traceback" in failed.traceback
    with pytest.raises(ValueError, match="boom"):
        fail.apply().get()
    assert isinstance(fail.apply().get(propagate=False), ValueError)
    with pytest.raises(ValueError, match="boom"):
        fail.apply(throw=True)


def test_apply_checks_the_call_as_a_worker_would(redis_server):
    with pytest.raises(InvalidCall, match="args"):
        add.apply(({1: "a"}, 2))
    with pytest.raises(InvalidCall, match="compression"):
        add.apply((1, 2), compression="zlib")
    revoked = add.apply((1, 1))
    revoked.revoke()
    with pytest.raises(TaskRevoked):
        revoked.get()


def test_apply_calls_the_hooks_with_celery_s_arguments(ledger):
    result = hooked.apply(("ok",))
    assert lines(ledger) == [
        f"before_start {result.id} ['ok'] {{}}",
        f"on_success 'ok' {result.id} ['ok']",
        f"after_return SUCCESS 'ok' {result.id} True",
    ]


def test_the_worker_calls_the_hooks_with_celery_s_arguments(worker, ledger):
    worker()
    ok, failed, retried = hooked.delay("ok"), hooked.delay("fail"), hooked.delay("retry")
    assert ok.get(timeout=20) == "ok" and retried.get(timeout=20) == "retry"
    with pytest.raises(KeyError):
        failed.get(timeout=20)
    assert wait_for(lambda: len(lines(ledger)) == 12, timeout=10), lines(ledger)
    by_task = {r.id: [line for line in lines(ledger) if r.id in line] for r in (ok, failed, retried)}
    assert by_task[ok.id] == [
        f"before_start {ok.id} ['ok'] {{}}",
        f"on_success 'ok' {ok.id} ['ok']",
        f"after_return SUCCESS 'ok' {ok.id} True",
    ]
    assert by_task[failed.id] == [
        f"before_start {failed.id} ['fail'] {{}}",
        f"on_failure KeyError('nope') {failed.id} KeyError True",
        f"after_return FAILURE KeyError('nope') {failed.id} False",
    ]
    assert by_task[retried.id][:3] == [
        f"before_start {retried.id} ['retry'] {{}}",
        f"on_retry ValueError('again') {retried.id} True",
        f"after_return RETRY ValueError('again') {retried.id} False",
    ]
    assert by_task[retried.id][3:] == [
        f"before_start {retried.id} ['retry'] {{}}",
        f"on_success 'retry' {retried.id} ['retry']",
        f"after_return SUCCESS 'retry' {retried.id} True",
    ]


def test_a_hook_that_raises_changes_no_outcome_and_stops_no_worker(worker, ledger):
    process = worker("-c", "1")
    ok, failed = broken_hooks.delay("a", False), broken_hooks.delay("b", True)
    assert ok.get(timeout=20) == "a"
    with pytest.raises(ValueError, match="b failed"):
        failed.get(timeout=20)
    assert [line.split()[1] for line in lines(ledger)] == ["a", "b"]  # each ran once
    assert TaskRecord.objects.get(pk=ok.id).state == "SUCCESS"
    assert add.delay(1, 1).get(timeout=20) == 2 and process.process.poll() is None
    log = process.log()
    for hook in ("before_start", "on_success", "on_failure", "after_return"):
        assert f"its {hook}() hook raised; the outcome stands" in log


def test_update_state_shows_a_custom_state_and_meta_while_the_task_runs(worker, ledger):
    worker()
    result = in_custom_state.delay("k", 3)
    assert wait_for(lambda: lines(ledger) == ["reported k"], timeout=20)
    assert wait_for(lambda: result.state == "PROGRESS", timeout=5)
    assert result.info == {"key": "k", "done": 1, "total": 2} and result.result == result.info
    assert not result.ready()
    assert result.get(timeout=20) == "done"
    assert result.state == "SUCCESS" and result.info == "done"


def test_update_state_refuses_what_it_cannot_do_and_the_task_fails_saying_why(worker):
    worker()
    for how, message in (
        ("outcome", "to end in SUCCESS, return the value"),
        ("meta", r"meta\['x'\] cannot be stored"),
        ("other", "may update only its own row"),
    ):
        with pytest.raises(InvalidCall, match=message):
            bad_update.delay(how).get(timeout=20)


def test_update_state_outside_a_worker_records_nothing():
    assert in_custom_state.update_state(state="PROGRESS", meta={}) is False


def test_replace_keeps_the_id_and_the_result_is_the_replacement_s(worker, ledger):
    worker()
    result = replaced_by_mul.delay(4)
    assert result.get(timeout=30) == 40
    row = TaskRecord.objects.get(pk=result.id)
    assert row.task_name == "tests.testapp.tasks.mul" and row.args == [4, 10]
    assert row.options["replaced"][0]["task"] == "tests.testapp.tasks.replaced_by_mul"
    assert row.headers["replaced_task_nesting"] == 1 and row.errors[0]["exception_type"].endswith("Replaced")
    assert lines(ledger) == [f"replaced {result.id}"]  # the replaced task ran once


def test_a_replaced_task_s_chain_and_links_move_to_the_replacement(worker):
    worker()
    res = chain(replaced_by_mul.s(2), add.s(1), xsum.si([5, 5]))()
    assert res.get(timeout=30) == 10
    assert res.parent.get(timeout=30) == 21 and res.parent.parent.get(timeout=30) == 20
    linked = replaced_by_mul.apply_async((3,), link=add.s(100))
    assert linked.get(timeout=30) == 30
    assert wait_for(lambda: TaskRecord.objects.filter(parent_id=linked.id, state="SUCCESS").exists(), timeout=20)
    assert TaskRecord.objects.get(parent_id=linked.id).result == 130


def test_a_replacement_on_another_queue_runs_there(worker):
    worker("-Q", "default")
    result = replaced_by_other_queue.delay(5)
    assert wait_for(lambda: TaskRecord.objects.get(pk=result.id).queue == "elsewhere", timeout=20)
    assert TaskRecord.objects.get(pk=result.id).state == "RETRY"  # waiting for a worker of "elsewhere"
    worker("-Q", "elsewhere")
    assert result.get(timeout=30) == 15


def test_replace_inline_and_under_apply_returns_the_replacement_s_value():
    assert replaced_by_mul(2) == 20
    assert replaced_by_mul.apply((2,)).get() == 20


def test_replace_takes_one_signature():
    with pytest.raises(InvalidCall, match="takes the signature of one task, not chain"):
        replaced_by_mul.replace(add.s(1, 1) | add.s(2))
    with pytest.raises(InvalidCall, match="must not be part of a chord"):
        replaced_by_mul.replace(mul.s(1, 2).set(chord="x"))


def test_async_result_reads_a_replaced_row_while_it_waits(worker):
    result = replaced_by_other_queue.delay(1)
    worker("-Q", "default")
    assert wait_for(lambda: AsyncResult(result.id).state == "RETRY", timeout=20)
    assert "replaced by" in str(AsyncResult(result.id).info)
