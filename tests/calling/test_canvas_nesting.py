"""Canvas composed to any depth, as Celery 5 runs it (cases from Celery's t/integration/test_canvas.py).

Chords stay counted in the database: a nested chain counts when its last step finishes, a nested
group when all its members do, a nested chord when its callback does; the callback runs once.
"""

import pytest

from djtasks import ChordError, GroupResult, chain, chord, group
from djtasks.calling.canvas import from_dict
from djtasks.models import Chord, TaskRecord
from tests.celeryapp.tasks import add, add_to_all, fail_on, identity, mul, pause, tsum, xsum
from tests.support.waiting import wait_for
from tests.testapp.tasks import record_error

pytestmark = [pytest.mark.django_db(transaction=True)]
T = 60


def test_a_chain_inside_a_group_and_groups_inside_groups(worker):
    worker()
    assert group(add.s(1, 1) | mul.s(10), add.s(2, 2))().get(timeout=T) == [20, 4]
    nested = group(add.si(1, 10), group(add.si(1, 100), group(add.si(1, 1000), add.si(1, 2000))))
    assert nested().get(timeout=T) == [11, 101, 1001, 2001]  # unrolled, as Celery does
    tail = group(chain(identity.s(42), group(identity.s(), identity.s())), identity.s(7))()
    assert tail.get(timeout=T) == [[42, 42], 7]  # a chain ending in a group keeps its list
    assert isinstance(tail.results[0], GroupResult) and tail.ready() and tail.completed_count() == 2


def test_a_chain_in_a_chord_header_counts_when_its_last_step_finishes(worker):
    worker("-c", "3")
    member = chain(add.s(1, 1), pause.s(0.5), mul.s(10))
    res = chord([member, add.s(5, 5)], xsum.s())()
    assert res.get(timeout=T) == 30
    counter = Chord.objects.get(pk=res.parent.id)
    last = TaskRecord.objects.get(task_name="tests.celeryapp.tasks.mul")
    first = TaskRecord.objects.get(task_name="tests.celeryapp.tasks.add", args=[1, 1])
    assert last.id in counter.member_ids and first.id not in counter.member_ids
    assert counter.done == len(counter.member_ids) == 2
    callback = TaskRecord.objects.get(pk=res.id)
    assert callback.started_at >= last.finished_at and callback.args == [[20, 10]]


def test_chords_inside_chords(worker):
    worker("-c", "3")
    c1 = chord([chord([add.s(1, 2), add.s(3, 4)], add.s([5])), chord([add.s(6, 7)], add.s([10]))], add_to_all.s(["A"]))
    assert c1().get(timeout=T) == [[3, 7, 5, "A"], [13, 10, "A"]]
    c2 = group([group([add.s(1, 2), add.s(3, 4)]) | add.s([5]), group([add.s(6, 7)]) | add.s([10])]) | add_to_all.s(
        ["A"]
    )
    assert c2().get(timeout=T) == [[3, 7, 5, "A"], [13, 10, "A"]]
    mixed = chord(
        (
            identity.si(42),
            chain((identity.si(42),) * 4),
            group((identity.si(42),) * 4),
            chord((identity.si(42),) * 4, identity.si(1337)),
        ),
        identity.s(),
    )
    assert group((mixed,))().get(timeout=T) == [[42, 42, *((42,) * 4), 1337]]
    tail = chord(group(chain(identity.s(42), group(identity.s(), identity.s()))), identity.s())
    assert tail().get(timeout=T) == [[42, 42]]
    assert all(c.done == len(c.member_ids) and c.fired_at for c in Chord.objects.all())


def test_chord_then_task_and_chains_of_groups_and_chords(worker):
    worker("-c", "3")
    assert (chord([add.s(i, i) for i in range(3)], xsum.s()) | mul.s(10))().get(timeout=T) == 60
    assert (chord([add.s(1, 1)], xsum.s()) | chord([add.s(1), add.s(2)], xsum.s()))().get(timeout=T) == 7
    c = add.si(1, 0) | group(add.s(1), add.s(1)) | group(tsum.s(), tsum.s()) | tsum.s()
    assert c().get(timeout=T) == 8
    c = add.si(1, 0) | group(add.s(1), add.s(1)) | tsum.s() | add.s(1) | chord(group(add.s(1), add.s(1)), tsum.s())
    assert c().get(timeout=T) == 12
    assert chain(add.s(1, 1), chord([add.s(1), add.s(2)], xsum.s()), mul.s(2))().get(timeout=T) == 14
    nested = chain(
        add.si(1, 0),
        group(add.si(1, 100), chain(add.si(1, 200), group(add.si(1, 1000), add.si(1, 2000)))),
        add.si(1, 10),
    )
    assert nested().get(timeout=T) == 11
    assert chain(group(identity.s(42), identity.s(42)))().get(timeout=T) == [42, 42]  # a lone group
    assert chain(add.s(2, 2), group(add.s(1)), add.s(1))().get(timeout=T) == 6  # a group of one is its member


def test_a_failure_anywhere_fails_every_enclosing_chord_once(worker):
    worker("-c", "3")
    deep = chord([chord([fail_on.s(3, 3), add.s(1, 1)], xsum.s()), add.s(2, 2)], xsum.s())()
    with pytest.raises(ChordError, match=r"raised ChordError\(\"Dependency \S+ raised ValueError\('bad value 3'\)\"\)"):
        deep.get(timeout=T)
    inner_callback = TaskRecord.objects.get(pk=Chord.objects.get(pk=deep.parent.id).member_ids[0])
    assert inner_callback.state == "FAILURE" and inner_callback.exception_type == "djtasks.exceptions.ChordError"
    in_chain = chord([chain(add.s(1, 1), fail_on.s(2), add.s(1)), add.s(1, 1)], xsum.s())()
    with pytest.raises(ChordError, match="bad value 2"):
        in_chain.get(timeout=T)
    counter = Chord.objects.get(pk=in_chain.parent.id)
    never_ran = TaskRecord.objects.get(pk=counter.member_ids[0])  # the chain's last step
    assert never_ran.state == "FAILURE" and never_ran.started_at is None
    followed = (chord([fail_on.s(1, 1)], xsum.s()) | mul.s(2))()
    with pytest.raises(ChordError):
        followed.get(timeout=T)
    assert TaskRecord.objects.get(pk=followed.id).state == "FAILURE"  # what follows the chord never runs
    assert not TaskRecord.objects.filter(state="SUCCESS", task_name__in=[xsum.registered_name, mul.registered_name])


def test_nested_chords_fire_once_with_several_workers(worker):
    worker("-c", "3")
    worker("-c", "3")
    header = [chain(add.s(i, 0), mul.s(2)) for i in range(8)] + [chord([add.s(i, 1) for i in range(6)], xsum.s())]
    results = [chord(header, xsum.s())() for _ in range(3)]
    assert [r.get(timeout=T) for r in results] == [2 * 28 + 21] * 3
    # 3 outer callbacks and 3 inner ones, each written once; every counter counted every member once.
    assert TaskRecord.objects.filter(task_name="tests.celeryapp.tasks.xsum").count() == 6
    assert all(c.done == len(c.member_ids) for c in Chord.objects.all())


def test_a_worker_killed_inside_a_nested_chord_loses_nothing(worker):
    first = worker("-c", "2")
    res = chord([chain(add.s(1, 1), pause.s(3), mul.s(10)), chord([pause.si(5, 3)], xsum.s())], xsum.s())()
    running = TaskRecord.objects.filter(task_name=pause.registered_name, state="PENDING").exclude(lease_expires_at=None)
    assert wait_for(lambda: running.count() == 2, timeout=30)
    first.kill()
    worker("-c", "2")
    assert res.get(timeout=T) == 25
    assert TaskRecord.objects.filter(task_name="tests.celeryapp.tasks.xsum").count() == 2
    assert all(c.done == len(c.member_ids) for c in Chord.objects.all())


def test_invert_link_and_on_error(worker, ledger):
    worker()
    assert ~add.s(2, 2) == 4
    assert ~(add.s(1, 1) | mul.s(8)) == 16
    sig = add.s(2, 2)
    assert sig.link(mul.s(4)) == mul.s(4)
    res = sig.delay()
    assert res.get(timeout=T) == 4
    assert wait_for(lambda: TaskRecord.objects.filter(parent_id=res.id, state="SUCCESS").exists(), timeout=20)
    assert TaskRecord.objects.get(parent_id=res.id).result == 16
    failing = fail_on.s(1, 1).on_error(record_error.s())
    assert isinstance(failing, type(sig))
    bad = failing.delay()
    with pytest.raises(ValueError):
        bad.get(timeout=T)
    assert wait_for(lambda: f"errback {bad.id}" in ledger.read_text(), timeout=20)


def test_a_workflow_round_trips_through_json_and_each_call_starts_it_afresh(worker):
    worker()
    workflow = chord([chain(add.s(1, 1), mul.s(2)), group(add.s(1, 2), add.s(3, 4))], xsum.s()) | mul.s(10)
    assert from_dict(workflow.as_dict()).as_dict() == workflow.as_dict()
    first, second = workflow(), workflow()
    assert first.id != second.id
    assert first.get(timeout=T) == second.get(timeout=T) == (4 + 3 + 7) * 10
