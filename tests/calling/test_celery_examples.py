"""The examples of Celery's documentation, run as written against real worker processes."""

import time

import pytest

from djtasks import chain, chord, group
from djtasks.models import TaskRecord
from tests.testapp.tasks import add, mul, xsum

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_delay_and_get(worker):
    worker()
    assert add.delay(4, 4).get(timeout=10) == 8


def test_calling_the_task_runs_it_inline():
    assert add(2, 2) == 4
    assert TaskRecord.objects.count() == 0


def test_countdown_runs_no_sooner(worker):
    worker()
    started = time.time()
    result = add.apply_async((2, 2), countdown=3)
    assert result.get(timeout=30) == 4
    row = TaskRecord.objects.get(pk=result.id)
    assert row.started_at.timestamp() >= started + 3


def test_partial_signature(worker):
    worker()
    assert add.s(2).delay(4).get(timeout=20) == 6


def test_chain_passes_each_result_on(worker):
    worker()
    assert chain(add.s(2, 2), add.s(4), add.s(8))().get(timeout=20) == 16
    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=20) == 16


def test_immutable_signatures_and_parents(worker):
    worker()
    # Celery's docs write the last step as add.si(8, 8); the add.s(8, 8) is mutable and so
    # receives the parent's 8 too (add(8, 8, 8)), in Celery as here: see the next test.
    res = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()
    assert res.get(timeout=20) == 16
    assert res.parent.get(timeout=20) == 8
    assert res.parent.parent.get(timeout=20) == 4


def test_a_mutable_last_step_receives_the_parent_result(worker):
    worker()
    res = (add.si(2, 2) | add.si(4, 4) | add.s(8, 8))()
    with pytest.raises(TypeError, match="too many positional arguments"):
        res.get(timeout=20)
    assert TaskRecord.objects.get(pk=res.id).args == [8, 8, 8]
    assert res.parent.get(timeout=20) == 8


def test_chain_of_a_chain(worker):
    worker()
    assert chain(add.s(4, 4) | mul.s(8))().get(timeout=20) == 64


def test_group_results_in_order(worker):
    worker()
    assert group(add.s(i, i) for i in range(10))().get(timeout=10 * 3) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert group(add.s(i) for i in range(10))(10).get(timeout=30) == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]


def test_chord_sums_its_header(worker):
    worker()
    assert chord((add.s(i, i) for i in range(10)), xsum.s())().get(timeout=30) == 90


def test_group_then_task_is_a_chord(worker):
    worker()
    assert (group(add.s(i, i) for i in range(10)) | xsum.s())().get(timeout=30) == 90


def test_link_runs_the_callback_with_the_result(worker):
    worker()
    res = add.apply_async((2, 2), link=add.s(16))
    assert res.get(timeout=20) == 4
    deadline = time.monotonic() + 20
    while not TaskRecord.objects.filter(parent_id=res.id, state="SUCCESS").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    callback = TaskRecord.objects.get(parent_id=res.id)
    assert callback.result == 20 and callback.root_id == res.id


def test_expires_in_the_future_runs(worker):
    worker()
    res = add.apply_async((10, 10), expires=60)
    assert res.get(timeout=20) == 20
    assert TaskRecord.objects.get(pk=res.id).expires_at is not None
