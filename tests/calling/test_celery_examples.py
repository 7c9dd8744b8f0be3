"""The examples of Celery's documentation, run as written against real worker processes."""

import time
from datetime import UTC

import pytest
from django.conf import settings
from django.test import override_settings

from djtasks import chain, chord, group
from djtasks.models import TaskRecord
from tests.support.waiting import wait_for
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


# Celery 5 userguide/canvas.rst, "Signatures" to "Chunks", in the order the guide gives them, on
# tests/celeryapp's tasks (the guide's own): adapted only by imports, except where a comment says.
# xrange is range; a value the guide prints is asserted.
def test_canvas_guide_signatures_and_partials(worker):
    from djtasks import signature
    from tests.celeryapp.tasks import add

    s = signature("tests.celeryapp.tasks.add", args=(2, 2), countdown=10)
    assert (s.task, tuple(s.args), s.options) == ("tests.celeryapp.tasks.add", (2, 2), {"countdown": 10})
    assert add.signature((2, 2), countdown=10) == s
    assert add.s(2, 2, debug=True).kwargs == {"debug": True}
    s = add.signature((2, 2), {"debug": True}, countdown=10)
    assert (tuple(s.args), s.kwargs, s.options) == ((2, 2), {"debug": True}, {"countdown": 10})
    assert add(2, 2) == 4
    assert add.s(2, 2)() == 4
    assert add.s(2, 2).set(countdown=1).options == {"countdown": 1}
    s = add.s(2)
    # The guide prints add(2, 4, debug=True); Celery 5's clone() prepends the new args (4, 2), as here.
    assert (tuple(s.clone(args=(4,), kwargs={"debug": True}).args), s.clone(kwargs={"debug": True}).kwargs) == (
        (4, 2),
        {"debug": True},
    )
    assert add.signature((2, 2), immutable=True).immutable and add.si(2, 2).immutable
    worker()
    result = add.delay(2, 2)
    assert result.get(timeout=20) == 4
    assert add.s(2, 2).delay().get(timeout=20) == 4
    assert add.s(2, 2).apply_async(countdown=1).get(timeout=20) == 4
    partial = add.s(2)  # incomplete signature
    assert partial.delay(4).get(timeout=20) == 6  # 2 + 4
    assert partial.apply_async((4,)).get(timeout=20) == 6  # same
    s = add.signature((2, 2), countdown=10)
    assert s.apply_async(countdown=1).get(timeout=20) == 4  # countdown is now 1
    assert ~add.s(2, 2) == 4


def test_canvas_guide_callbacks_and_the_primitives(worker):
    from djtasks import chain, chord, group
    from tests.celeryapp.tasks import add, mul, xsum

    worker()
    res = add.apply_async((2, 2), link=mul.s(16))
    assert res.get(timeout=20) == 4
    assert wait_for(lambda: len(res.children) == 1 and res.children[0].ready(), timeout=20)
    assert res.children[0].get(timeout=20) == 64
    # 2 + 2 + 4 + 8
    res = chain(add.s(2, 2), add.s(4), add.s(8))()
    assert res.get(timeout=20) == 16
    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=20) == 16
    res = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()  # the guide's last step is add.s(8, 8): see above
    assert res.get(timeout=20) == 16 and res.parent.get(timeout=20) == 8 and res.parent.parent.get(timeout=20) == 4
    res = group(add.s(i, i) for i in range(10))()
    assert res.get(timeout=20) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    res = chord((add.s(i, i) for i in range(10)), xsum.s())()
    assert res.get(timeout=20) == 90
    c1 = add.s(4) | mul.s(8)
    # (16 + 4) * 8
    res = c1(16)
    assert res.get(timeout=20) == 160
    # ((4 + 16) * 2 + 4) * 8
    c2 = add.s(4, 16) | mul.s(2) | (add.s(4) | mul.s(8))
    res = c2()
    assert res.get(timeout=20) == 352
    c3 = group(add.s(i, i) for i in range(10)) | xsum.s()
    res = c3()
    assert res.get(timeout=20) == 90
    res = (add.s(4, 4) | group(add.si(i, i) for i in range(10)))()
    assert res.get(timeout=20) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert res.parent.get(timeout=20) == 8


def test_canvas_guide_chains_groups_and_chords(worker):
    from djtasks import ChordError, chain, chord, group
    from tests.celeryapp.tasks import add, mul, raising_task, tsum

    worker()
    # (4 + 4) * 8 * 10
    res = chain(add.s(4, 4), mul.s(8), mul.s(10))()
    assert res.get(timeout=20) == 640
    assert res.parent.get(timeout=20) == 64
    assert res.parent.parent.get(timeout=20) == 8
    assert (add.s(2, 2) | mul.s(8) | mul.s(10)).apply_async().get(timeout=20) == 320
    s = add.s(2, 2)
    s.link(mul.s(4))
    assert s.apply_async().get(timeout=20) == 4
    g = group(add.s(2, 2), add.s(4, 4))
    res = g()
    assert res.get(timeout=20) == [4, 8]
    job = group([add.s(2, 2), add.s(4, 4), add.s(8, 8), add.s(16, 16), add.s(32, 32)])
    result = job.apply_async()
    assert result.get(timeout=20) == [4, 8, 16, 32, 64]
    assert result.ready() and result.successful() and not result.failed() and not result.waiting()
    assert result.completed_count() == 5 and result.join(timeout=20) == [4, 8, 16, 32, 64]
    assert chord(add.s(i, i) for i in range(100))(tsum.s()).get(timeout=60) == 9900
    callback = tsum.s()
    header = [add.s(i, i) for i in range(100)]
    result = chord(header)(callback)
    assert result.get(timeout=60) == 9900
    # The guide's error example calls a chord without a body; it is given one (tsum) here.
    c = chord([add.s(4, 4), raising_task.s(), add.s(8, 8)], tsum.s())
    result = c()
    with pytest.raises(ChordError, match=r"Dependency \S+ raised ValueError\('something something'\)"):
        result.get(timeout=20)


def test_canvas_guide_map_starmap_and_chunks(worker):
    from tests.celeryapp.tasks import add, xsum

    worker()
    # range() is not JSON (nor is it for Celery's json serializer): the guide's ranges are lists here.
    assert ~xsum.map([list(range(10)), list(range(100))]) == [45, 4950]
    assert ~add.starmap(zip(range(10), range(10), strict=True)) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    res = add.starmap(zip(range(10), range(10), strict=True)).apply_async(countdown=1)
    assert res.get(timeout=20) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    res = add.chunks(zip(range(100), range(100), strict=True), 10)()
    assert res.get(timeout=30) == [list(range(i, i + 20, 2)) for i in range(0, 200, 20)]
    group = add.chunks(zip(range(100), range(100), strict=True), 10).group()
    assert group.skew(start=1, stop=10)().get(timeout=40) == res.get(timeout=1)


# Celery 5 userguide/calling.rst: Basics to Message Sending Retry (the options djtasks refuses,
# compression among them, are in the README's table and tests/calling's option tests).
def test_calling_guide_examples(worker):
    from datetime import datetime, timedelta  # the guide's timezone.utc is datetime.UTC (ruff UP017)

    from tests.celeryapp.tasks import add, mul

    worker("-Q", "default,priority.high")
    assert add.delay(2, 2).get(timeout=20) == 4
    assert add.apply_async(args=[2], kwargs={"y": 2}).get(timeout=20) == 4
    assert add.s(2, 2).apply_async().get(timeout=20) == 4
    res = add.apply_async((2, 2), link=add.s(16))
    assert res.get(timeout=20) == 4
    assert wait_for(lambda: len(res.children) == 1 and res.children[0].ready(), timeout=20)
    assert res.children[0].get(timeout=20) == 20  # (2 + 2) + 16
    res = add.apply_async((2, 2), link=[add.s(16), mul.s(2)])  # the guide's other_task is mul here
    assert wait_for(lambda: len(res.children) == 2 and all(c.ready() for c in res.children), timeout=20)
    assert sorted(c.get(timeout=20) for c in res.children) == [8, 20]
    started = time.time()
    result = add.apply_async((2, 2), countdown=3)
    assert result.get(timeout=30) == 4  # this takes at least 3 seconds to return
    assert TaskRecord.objects.get(pk=result.id).started_at.timestamp() >= started + 3
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    later = add.apply_async((2, 2), eta=tomorrow)
    assert TaskRecord.objects.get(pk=later.id).eta == tomorrow and later.state == "PENDING"
    later.revoke()
    # Task expires after one minute from now.
    assert add.apply_async((10, 10), expires=60).get(timeout=20) == 20
    kwargs = {}
    res = add.apply_async((10, 10), kwargs, expires=datetime.now(UTC) + timedelta(days=1))
    assert res.get(timeout=20) == 20
    assert add.apply_async((2, 2), retry=False).get(timeout=20) == 4
    policy = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2, "retry_errors": None}
    assert add.apply_async((2, 2), retry=True, retry_policy=policy).get(timeout=20) == 4
    assert add.apply_async((2, 2), serializer="json").get(timeout=20) == 4
    res = add.apply_async((2, 2), queue="priority.high")
    assert res.get(timeout=20) == 4 and TaskRecord.objects.get(pk=res.id).queue == "priority.high"
    res = add.apply_async((2, 2), routing_key="priority.high")  # djtasks routes directly: the key is the queue
    assert res.get(timeout=20) == 4 and TaskRecord.objects.get(pk=res.id).queue == "priority.high"
    assert add.apply_async((2, 2), task_id="my_own_task_id").id == "my_own_task_id"


# Celery 5 getting-started/next-steps.rst: Calling tasks, Canvas, Routing, Remote control.
def test_next_steps_guide_examples(worker):
    from djtasks import chain, chord, control, group
    from tests.celeryapp.tasks import add, mul, xsum

    process = worker("-Q", "default,lopri,hipri")
    assert add.delay(2, 2).get(timeout=20) == 4
    assert add.apply_async((2, 2)).get(timeout=20) == 4
    assert add.apply_async((2, 2), queue="lopri", countdown=10).id
    res = add.delay(2, 2)
    assert res.get(timeout=20) == 4 and len(res.id) == 36
    res = add.delay(2, "2")
    with pytest.raises(TypeError):
        res.get(timeout=20)
    assert isinstance(res.get(propagate=False), TypeError)
    assert res.failed() and not res.successful() and res.state == "FAILURE"
    s1 = add.s(2, 2)
    res = s1.delay()
    assert res.get(timeout=20) == 4
    s2 = add.s(2)  # incomplete partial: add(?, 2)
    res = s2.delay(8)
    assert res.get(timeout=20) == 10
    s3 = add.s(2, 2, debug=True)
    assert s3.kwargs == {"debug": True}
    assert group(add.s(i, i) for i in range(10))().get(timeout=20) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    g = group(add.s(i) for i in range(10))
    assert g(10).get(timeout=20) == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert chain(add.s(4, 4) | mul.s(8))().get(timeout=20) == 64
    g = chain(add.s(4) | mul.s(8))
    assert g(4).get(timeout=20) == 64
    assert (add.s(4, 4) | mul.s(8))().get(timeout=20) == 64
    assert chord((add.s(i, i) for i in range(10)), xsum.s())().get(timeout=20) == 90
    assert (group(add.s(i, i) for i in range(10)) | xsum.s())().get(timeout=20) == 90
    # app.conf.update(task_routes=...) is Django's settings in a Django project: CELERY_TASK_ROUTES.
    routes = {"tests.celeryapp.tasks.add": {"queue": "hipri"}}
    no_djtasks_routes = {key: value for key, value in settings.DJTASKS.items() if key != "ROUTES"}  # they would win
    with override_settings(CELERY_TASK_ROUTES=routes, DJTASKS=no_djtasks_routes):
        res = add.delay(2, 2)
    assert res.get(timeout=20) == 4 and TaskRecord.objects.get(pk=res.id).queue == "hipri"
    res = add.apply_async((2, 2), queue="hipri")
    assert res.get(timeout=20) == 4
    # celery -A proj inspect active / control enable_events / status
    worker_id = process.name
    assert control.inspect().active() == {worker_id: []}
    [reply] = control.broadcast("enable_events", reply=True, timeout=10)
    assert reply.worker == worker_id and reply.ok
    assert [row["worker"] for row in control.status()] == [worker_id]


# Celery 5 userguide/tasks.rst: Names, Bound tasks, the request, custom states.
def test_tasks_guide_examples(worker):
    from tests.celeryapp.tasks import add_named, dump_context, upload_files

    # The guide's add.name is 'sum-of-two-numbers'; on the django.tasks object .name is Django's
    # (the function's name) and Celery's name is registered_name.
    assert (add_named.registered_name, add_named.name) == ("sum-of-two-numbers", "add_named")
    process = worker()
    res = dump_context.delay(2, 2)
    assert res.get(timeout=20) is None
    assert f"Executing task id {res.id}, args: [2, 2] kwargs: {{}}" in process.log()
    assert upload_files(["a", "b"]) == 2  # called directly: no state reported
    res = upload_files.delay(["a", "b", "c"])
    assert res.get(timeout=20) == 3 and res.state == "SUCCESS"
    assert TaskRecord.objects.get(pk=res.id).reported["meta"] == {"current": 2, "total": 3}
