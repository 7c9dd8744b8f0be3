"""Poison messages are set aside with a reason; the worker never dies of bad input."""

import json
import random

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from djtasks import send_task
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, always_die, die, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True)]


def push_raw(task_id, envelope, queue="default"):
    broker = get_broker()
    broker.client.hset(broker.queue_key(queue, "messages"), task_id, envelope)
    broker.client.zadd(broker.queue_key(queue, "ready"), {task_id: 0})
    broker.client.lpush(broker.wake_key(queue), "1")


def test_arguments_that_do_not_bind_fail_and_are_dead_lettered(worker):
    worker()
    # delay() refuses them at the call (typing=True, as Celery); send_task checks nothing, as Celery's.
    result = send_task("tests.testapp.tasks.add", (1, 2, 3))
    with pytest.raises(TypeError, match="arguments do not match"):
        result.get(timeout=20)
    assert DeadLetter.objects.get(task_id=result.id).reason.startswith("arguments do not match")


def test_a_task_that_kills_its_child_every_time_is_dead_lettered_after_max_deliveries(worker):
    proc = worker("-c", "1")
    result = always_die.delay()
    assert wait_for(lambda: DeadLetter.objects.filter(task_id=result.id).exists(), timeout=60)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.WorkerLost"
    assert row.attempts == 5
    assert "delivered 6 times" in DeadLetter.objects.get(task_id=result.id).reason
    assert add.delay(1, 1).get(timeout=20) == 2 and proc.process.poll() is None


def test_malformed_and_forged_messages_are_set_aside_and_valid_work_continues(worker):
    proc = worker()
    rng = random.Random(7)
    bad = {}
    for i in range(40):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        bad[f"bad-{i}"] = garbage
    bad["forged"] = json.dumps({"v": 1, "id": "forged", "q": "default", "p": 0})
    bad["wrong-id"] = json.dumps({"v": 1, "id": "other", "q": "default", "p": 0})
    valid = []
    for i, (task_id, envelope) in enumerate(bad.items()):
        push_raw(task_id, envelope)
        if i % 4 == 0:
            valid.append(add.delay(i, 1))
    assert [r.get(timeout=30) for r in valid] == [i + 1 for i in range(0, len(bad), 4)]
    assert wait_for(lambda: DeadLetter.objects.count() == len(bad), timeout=30)
    assert "no task row" in DeadLetter.objects.get(task_id="forged").reason
    assert "does not match" in DeadLetter.objects.get(task_id="wrong-id").reason
    assert wait_for(lambda: get_broker().known(list(bad)) == [False] * len(bad), timeout=10)  # acked after the commit
    assert proc.process.poll() is None


def test_a_dead_letter_can_be_requeued_from_the_admin_once_fixed(worker, ledger):
    from django.contrib.auth.models import User

    row = TaskRecord.objects.create(id="poisoned", task_name=die.registered_name, args=["fixme"], state="FAILURE")
    DeadLetter.objects.create(task_id="poisoned", task_name=die.registered_name, queue="default", reason="worker lost")
    open(f"{ledger}.fixme.died", "w").close()  # the cause is fixed: the task now survives
    worker()
    request = RequestFactory().post("/", {"run_finished_again": "yes"})  # its row is FAILURE: confirmed
    request.user = User.objects.create_superuser("a", "a@example.com", "pw")
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    model_admin = site._registry[DeadLetter]
    model_admin.requeue(request, DeadLetter.objects.all())
    assert not DeadLetter.objects.exists()
    assert wait_for(lambda: TaskRecord.objects.get(pk=row.pk).state == "SUCCESS", timeout=20)


def redis_holds(raw_id: bytes) -> list[str]:
    """Name the structures of the default queue that still hold this id."""
    broker = get_broker()
    client = broker.client
    ready, scheduled, inflight = (broker.queue_key("default", k) for k in ("ready", "scheduled", "inflight"))
    found = [key for key in (ready, scheduled, inflight) if client.zscore(key, raw_id) is not None]
    return found + [
        key
        for key in (
            broker.queue_key("default", "messages"),
            broker.queue_key("default", "owners"),
            broker.queue_key("default", "deliveries"),
        )
        if client.hexists(key, raw_id)
    ]


@pytest.mark.parametrize("children", ["1", "2"])
def test_an_id_that_is_not_utf8_is_dead_lettered_and_the_worker_lives_on(worker, ledger, children):
    proc = worker("-c", children)
    long = sleep_then_record.delay("long", 8)  # outlives a lease: the parent must keep extending it
    push_raw(b"\xff", "2:0")
    assert wait_for(lambda: DeadLetter.objects.filter(task_id="\\xff").exists(), timeout=20)
    assert "not valid UTF-8" in DeadLetter.objects.get(task_id="\\xff").reason
    assert wait_for(lambda: redis_holds(b"\xff") == [], timeout=10)  # acked after the commit
    assert [add.delay(i, 1).get(timeout=20) for i in range(3)] == [1, 2, 3]
    long.get(timeout=30)
    assert ledger.read_text().count("start long") == 1
    assert proc.process.poll() is None
    # A restarted worker does not meet it again: it was acked with its dead letter.
    proc.stop()
    again = worker("-c", children)
    assert add.delay(2, 2).get(timeout=20) == 4
    assert DeadLetter.objects.count() == 1 and again.process.poll() is None


def test_an_id_with_nul_is_dead_lettered_without_a_database_lookup(worker):
    proc = worker("-c", "1")
    push_raw(b"a\x00b", "2:0")
    assert wait_for(lambda: DeadLetter.objects.exists(), timeout=20)
    letter = DeadLetter.objects.get()
    assert letter.task_id == "a\\x00b" and "NUL" in letter.reason
    assert wait_for(lambda: redis_holds(b"a\x00b") == [], timeout=10)  # acked after the commit
    assert "handing them back" not in proc.log()  # PostgreSQL refused it forever, once
    assert add.delay(1, 1).get(timeout=20) == 2 and proc.process.poll() is None
