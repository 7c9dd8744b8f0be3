"""Task and worker events go to a bounded Redis stream, in order per task; taskevents prints them."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from django.db import transaction

from djtasks import control, revoke
from djtasks.core.conf import get_settings
from djtasks.ops import events
from djtasks.transport import telemetry
from djtasks.transport.broker import Claim, get_broker
from tests.support.waiting import wait_for
from tests.support.workers import ROOT
from tests.testapp.tasks import add, fail, flaky, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True)]
INSPECTED = ("active", "reserved", "scheduled")


def kinds_of(task_id: str) -> list[str]:
    return [event["type"] for _, event in events.read(get_broker(), "0", count=100_000) if event.get("id") == task_id]


def received_then(kinds: list[str], *rest: str) -> bool:
    """One task's events: task-received once per delivery, then `rest`.

    A child claims a batch from a deep queue; when its first task is slow (on a loaded machine
    even `add` can take more than 20 ms) it hands the rest of the batch back, and whoever claims
    them again receives them again, as Celery does with a redelivered message.
    """
    received = len(kinds) - len(rest)
    return received >= 1 and kinds == ["task-received"] * received + list(rest)


def test_events_arrive_in_order_per_task(worker):
    worker()
    results = [add.delay(i, i) for i in range(20)] + [fail.delay("bad")]
    for result in results[:-1]:
        result.get(timeout=30)
    assert wait_for(lambda: "task-failed" in kinds_of(results[-1].id), timeout=30)
    for result in results[:-1]:
        assert wait_for(lambda r=result: received_then(kinds_of(r.id), "task-started", "task-succeeded"), timeout=10), (
            kinds_of(result.id)
        )
    assert received_then(kinds_of(results[-1].id), "task-started", "task-failed"), kinds_of(results[-1].id)
    failed = [e for _, e in events.read(get_broker(), "0") if e.get("id") == results[-1].id][-1]
    assert failed["exception"] == "builtins.ValueError" and failed["name"] == "tests.testapp.tasks.fail"


def test_a_retried_task_has_a_retried_event_for_each_retry(worker, ledger):
    worker()
    result = flaky.delay("events", 3)
    assert result.get(timeout=30)["retries"] == 2
    assert wait_for(lambda: kinds_of(result.id)[-1:] == ["task-succeeded"], timeout=10)
    attempt = ["task-received", "task-started"]
    assert kinds_of(result.id) == [*attempt, "task-retried", *attempt, "task-retried", *attempt, "task-succeeded"]


def test_revoked_tasks_and_worker_lifecycle_make_events(worker):
    process = worker()
    waiting = sleep_then_record.apply_async(("x", 0), countdown=60)
    revoke(waiting.id)
    assert kinds_of(waiting.id) == ["task-revoked"]
    assert add.delay(1, 1).get(timeout=20) == 2
    assert wait_for(lambda: any(e["type"] == "worker-heartbeat" for _, e in events.read(get_broker(), "0")))
    process.stop()
    kinds = [e["type"] for _, e in events.read(get_broker(), "0") if e["type"].startswith("worker-")]
    assert kinds[0] == "worker-online" and kinds[-1] == "worker-offline"


def test_the_stream_is_trimmed_to_about_events_maxlen(redis_server):
    broker = get_broker()
    config = replace(get_settings(), EVENTS_MAXLEN=100)
    for i in range(1000):
        telemetry.emit(broker, config, "worker-heartbeat", worker="djtasks@test.1", processed=i)
    assert 100 <= broker.client.xlen(broker.events_key()) < 250
    assert events.read(broker, "0", count=1000)[-1][1]["processed"] == 999


def test_no_events_are_written_when_events_are_disabled(worker):
    worker(env={"DJTASKS_ENABLE_EVENTS": "0"})
    assert add.delay(2, 2).get(timeout=20) == 4
    assert [e for _, e in events.read(get_broker(), "0") if e["type"].startswith("task-")] == []


def test_taskevents_prints_one_line_per_event_and_json(worker, redis_server):
    worker()
    result = add.delay(5, 5)
    result.get(timeout=20)
    assert wait_for(lambda: "task-succeeded" in kinds_of(result.id))
    env = {**os.environ, "REDIS_URL": redis_server.url}
    base = [sys.executable, str(ROOT / "manage.py"), "taskevents", "--settings=tests.settings", "--no-follow"]
    out = subprocess.run([*base, "--task-id", result.id], env=env, capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["task-received", "task-started", "task-succeeded"], out.stderr
    assert f"tests.testapp.tasks.add[{result.id}]" in lines[2] and "runtime=" in lines[2]
    out = subprocess.run([*base, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert any(json.loads(line).get("id") == result.id for line in out.stdout.splitlines())


def test_events_and_counters_are_written_once_when_redis_lost_its_scripts(redis_server):
    broker = get_broker()
    redis_server.client().script_flush()
    claim = Claim(id="gone", envelope=b"{}", deliveries=1, token="t", queue="default")
    commands = [("XADD", broker.events_key(), "*", "e", '[{"type": "task-succeeded", "id": "x"}]')]
    assert broker.ack_many([claim], also=commands) == [False]
    assert broker.client.xlen(broker.events_key()) == 1


SECRET = "Zq8wX1vBmK3tR7yH"


def test_inspect_replies_and_events_carry_no_argument_values_and_no_exception_message(worker):
    process = worker("-c", "1")
    wid = process.name
    assert wait_for(lambda: wid in control.workers(), timeout=30)
    later = add.apply_async((f"{SECRET}-later", "x"), countdown=120)
    assert add.delay(0, 0).get(timeout=30) == 0  # a fast task first: the child now claims batches
    with transaction.atomic():  # one deep queue: the child reserves some behind the slow one
        slow = sleep_then_record.apply_async(kwargs={"key": f"{SECRET}-slow", "seconds": 4})
        queued = [add.delay(f"{SECRET}-{i}", "y") for i in range(6)]
    inspect = {what: lambda w=what: control.inspect(w, destination=[wid], timeout=10)[0].data for what in INSPECTED}
    assert wait_for(inspect["active"], timeout=20)
    replies = {what: ask() for what, ask in inspect.items()}
    assert SECRET not in json.dumps(replies, default=str)
    [active] = replies["active"]
    assert (active["id"], active["args"], active["kwargs"]) == (slow.id, 0, ["key", "seconds"])
    [scheduled] = replies["scheduled"]
    assert (scheduled["id"], scheduled["args"], scheduled["kwargs"]) == (later.id, 2, [])
    failed = fail.delay(message=f"refused {SECRET}")
    assert [r.get(timeout=30) for r in queued][-1] == f"{SECRET}-5y"
    assert wait_for(lambda: "task-failed" in kinds_of(failed.id), timeout=30)
    stream = events.read(get_broker(), "0", count=100_000)
    assert SECRET not in json.dumps(stream)
    [event] = [e for _, e in stream if e.get("id") == failed.id and e["type"] == "task-failed"]
    assert event["exception"] == "builtins.ValueError"


def test_an_event_names_the_class_of_an_exception_whoever_writes_it(redis_server):
    recorder = telemetry.Recorder(get_broker(), get_settings(), "w1")
    recorder.event("task-failed", id="t", exception=f"djtasks.exceptions.TimeLimitExceeded: {SECRET}: more")
    assert recorder.events[0]["exception"] == "djtasks.exceptions.TimeLimitExceeded"
