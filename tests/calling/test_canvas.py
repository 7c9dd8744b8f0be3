"""Canvas beyond the documentation's examples: signatures, errbacks, chord failure, chunks, map."""

import time

import pytest

from djtasks import ChordError, GroupResult, Signature, chain, chord, chunks, group, signature, task
from djtasks.calling.canvas import from_dict
from djtasks.core.message import Message
from djtasks.exceptions import InvalidCall
from djtasks.models import Chord, TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, fail, fail_if, mul, record, record_error, xsum

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_partial_arguments_are_prepended_and_options_merged_later_winning():
    sig = add.s(2).set(queue="a", priority=5)
    clone = sig.clone((1,), queue="b")
    assert clone.args == (1, 2) and clone.options == {"queue": "b", "priority": 5}
    assert add.signature((1,), {"y": 2}, countdown=3).options == {"countdown": 3}
    assert add.si(1, 2).clone((99,)).args == (1, 2)  # immutable: the parent's result is not added
    assert signature("tests.testapp.tasks.add", (1, 1)) == add.s(1, 1)
    assert from_dict(add.s(1).set(queue="x").as_dict()) == add.s(1).set(queue="x")
    assert add.s(2)(3) == 5  # calling a signature runs it inline
    assert repr(add.si(1, 2)) == "tests.testapp.tasks.add(1, 2)!"


def test_signature_options_apply_when_it_is_sent(worker):
    worker("-Q", "default,sigq")
    result = add.s(1, 2).set(queue="sigq", task_id="sig-1").delay()
    assert result.id == "sig-1" and result.get(timeout=20) == 3
    assert TaskRecord.objects.get(pk="sig-1").queue == "sigq"


def test_rows_record_parent_root_and_group(worker):
    worker()
    res = (add.s(1, 1) | group(add.s(i) for i in range(3)))()
    assert res.get(timeout=30) == [2, 3, 4]
    first = res.results[0].parent or TaskRecord.objects.get(pk=res.results[0].id).parent_id
    rows = TaskRecord.objects.filter(group_id=res.id)
    assert rows.count() == 3
    parent_ids = {r.parent_id for r in rows}
    assert len(parent_ids) == 1
    root = TaskRecord.objects.get(pk=parent_ids.pop())
    assert all(r.root_id == root.id for r in rows) and root.root_id == root.id and first


def test_link_error_receives_the_failed_task_id(worker, ledger):
    worker()
    res = fail.apply_async(("x",), link_error=record_error.s(), link=record.s())
    with pytest.raises(ValueError):
        res.get(timeout=20)
    assert wait_for(lambda: f"errback {res.id}" in ledger.read_text())
    assert not TaskRecord.objects.filter(task_name="tests.testapp.tasks.record").exists()


def test_a_failing_chain_step_fails_the_steps_after_it(worker):
    worker()
    res = chain(add.s(1, 1), fail_if.s(2), add.s(5))()
    with pytest.raises(ValueError, match="bad value 2"):
        res.get(timeout=20)
    assert TaskRecord.objects.get(pk=res.id).state == "FAILURE"
    assert res.parent.state == "FAILURE" and res.parent.parent.get(timeout=5) == 2


def test_a_failing_member_fails_the_chord_with_chord_error(worker):
    worker()
    res = chord([fail_if.s(i, 3) for i in range(5)], xsum.s())()
    with pytest.raises(ChordError, match="bad value 3"):
        res.get(timeout=30)
    assert isinstance(res.parent, GroupResult)
    assert Chord.objects.get(pk=res.parent.id).fired_at is not None


def test_a_chord_callback_runs_exactly_once_with_several_workers(worker):
    worker("-c", "3")
    worker("-c", "3")
    results = [chord([add.s(i, 0) for i in range(20)], xsum.s())() for _ in range(3)]
    assert [r.get(timeout=60) for r in results] == [190, 190, 190]
    assert TaskRecord.objects.filter(task_name="tests.testapp.tasks.xsum").count() == 3
    assert all(c.done == 20 for c in Chord.objects.all())


def test_a_redelivered_member_does_not_count_twice(worker, redis_server):
    res = chord([add.s(1, 1), add.s(2, 2)], xsum.s())()
    member = res.parent.results[0]
    worker()
    assert res.get(timeout=30) == 6
    # Deliver the finished member again: its row is final, so it is dropped before counting.
    get_broker().publish([(Message(id=member.id, queue="default"), 0)])
    assert add.delay(0, 0).get(timeout=20) == 0
    time.sleep(0.5)
    assert Chord.objects.get(pk=res.parent.id).done == 2
    assert TaskRecord.objects.filter(task_name="tests.testapp.tasks.xsum").count() == 1


def test_an_empty_chord_calls_back_with_an_empty_list(worker):
    worker()
    assert chord([], xsum.s())().get(timeout=20) == 0


def test_chord_in_a_chain_continues_after_the_callback(worker):
    worker()
    res = chain(add.s(1, 1), group(add.s(i) for i in range(3)), xsum.s(), mul.s(10))()
    assert res.get(timeout=30) == (2 + 3 + 4) * 10


def test_map_starmap_and_chunks(worker):
    worker()
    assert TaskRecord.objects.count() == 0
    assert xsum.map([[1, 2], [3]]).delay().get(timeout=20) == [3, 3]
    assert add.starmap([(1, 2), (3, 4)]).delay().get(timeout=20) == [3, 7]
    pairs = [(i, i) for i in range(10)]
    assert add.chunks(pairs, 4)().get(timeout=30) == [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]
    assert chunks(add, pairs, 5).group().apply_async().get(timeout=30) == [[0, 2, 4, 6, 8], [10, 12, 14, 16, 18]]


def test_a_group_is_enqueued_in_one_transaction(redis_server):
    with pytest.raises(TypeError):
        group([add.s(1, 1), add.s(object(), 1)])()
    assert TaskRecord.objects.count() == 0


def test_composition_follows_celery():
    assert isinstance(group([chain(add.s(1, 1), add.s(2))]).tasks[0], chain)  # any workflow can be a member
    assert isinstance(add.s(1) | add.s(2), chain) and isinstance(group(add.s(1)) | xsum.s(), chord)
    assert [type(step) for step in chain(add.s(1), group(add.s(2)), add.s(3)).tasks] == [Signature] * 3
    assert isinstance(chain(add.s(1), group(add.s(2), add.s(3)), xsum.s()).tasks[1], chord)
    assert isinstance(Signature("x"), Signature)


def test_a_chain_links_its_last_step_and_watches_every_step_for_errors(worker, ledger):
    worker()
    res = chain(add.s(1, 1), add.s(1)).apply_async(link=record.s(), link_error=record_error.s())
    assert res.get(timeout=20) == 3
    assert wait_for(lambda: TaskRecord.objects.filter(task_name="tests.testapp.tasks.record", state="SUCCESS").exists())
    assert TaskRecord.objects.get(task_name="tests.testapp.tasks.record").args == [3]
    failing = chain(add.s(1, 1), fail_if.s(2), add.s(1)).apply_async(link_error=record_error.s())
    with pytest.raises(ValueError):
        failing.get(timeout=20)
    assert wait_for(lambda: f"errback {failing.parent.id}" in ledger.read_text())


def test_ignore_result_still_feeds_the_next_step_of_a_chain(worker):
    worker()
    res = chain(add.s(2, 3).set(ignore_result=True), mul.s(10))()
    assert res.get(timeout=20) == 50
    assert res.parent.get(timeout=5) is None


def test_a_workflow_sent_while_redis_is_down_runs_when_it_is_back(worker, redis_server):
    worker()
    assert add.delay(0, 0).get(timeout=20) == 0
    redis_server.stop()
    try:
        res = (group(add.s(i, i) for i in range(4)) | xsum.s())()
        chained = chain(add.s(1, 1), mul.s(3)).apply_async(countdown=0.5)
    finally:
        time.sleep(1.0)
        redis_server.start()
    assert res.get(timeout=60) == 12
    assert chained.get(timeout=60) == 6


@task(name="tests.calling.new_style_errback")
def new_style_errback(request, exc, traceback):
    """Celery's new-style errback, which djtasks refuses at the call (it applies errbacks with the task id)."""


def test_celery_s_new_style_errback_is_refused_at_the_call_and_nothing_is_written():
    for call in (
        lambda: fail.apply_async(("x",), link_error=new_style_errback.s()),
        lambda: fail.s("x").on_error(new_style_errback.s()).delay(),
        lambda: chain(add.s(1, 1), fail_if.s(2)).apply_async(link_error=new_style_errback.s()),
    ):
        with pytest.raises(InvalidCall, match=r"new-style errback.*failed task's id"):
            call()
    assert TaskRecord.objects.count() == 0
    fail.apply_async(("x",), link_error=record_error.s())  # Celery's old style: accepted
    assert TaskRecord.objects.count() == 1
