"""Poison messages are set aside with a reason; the worker never dies of bad input."""

import json
import random

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, always_die, die

pytestmark = [pytest.mark.django_db(transaction=True)]


def push_raw(task_id, envelope, queue="default"):
    broker = get_broker()
    broker.client.hset(broker.key("m"), task_id, envelope)
    broker.client.zadd(broker.queue_keys(queue)[0], {task_id: 0})
    broker.client.lpush(broker.queue_keys(queue)[3], "1")


def test_arguments_that_do_not_bind_fail_and_are_dead_lettered(worker):
    worker()
    result = add.delay(1, 2, 3)
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
    assert get_broker().known(list(bad)) == [False] * len(bad)
    assert proc.process.poll() is None


def test_a_dead_letter_can_be_requeued_from_the_admin_once_fixed(worker, ledger):
    from django.contrib.auth.models import User

    row = TaskRecord.objects.create(id="poisoned", task_name=die.name, args=["fixme"], state="FAILURE")
    DeadLetter.objects.create(task_id="poisoned", task_name=die.name, queue="default", reason="worker lost")
    open(f"{ledger}.fixme.died", "w").close()  # the cause is fixed: the task now survives
    worker()
    request = RequestFactory().post("/", {"run_finished_again": "yes"})  # its row is FAILURE: confirmed
    request.user = User.objects.create_superuser("a", "a@example.com", "pw")
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    model_admin = site._registry[DeadLetter]
    model_admin.requeue(request, DeadLetter.objects.all())
    assert not DeadLetter.objects.exists()
    assert wait_for(lambda: TaskRecord.objects.get(pk=row.pk).state == "SUCCESS", timeout=20)
