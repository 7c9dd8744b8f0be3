"""Celery's control call forms (app.control.broadcast(...), revoke(..., signal=...), inspect().stats()...).

Against real workers: Celery's argument names reach the same effect as djtasks' own, durable
changes (rate and time limits, revoke) happen whatever form they are sent in, and every Celery
keyword (destination, reply, timeout, limit, callback, pattern, matcher) does what Celery says or
is refused with the djtasks way, before anything is sent.
"""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djtasks import control
from djtasks.calling.overrides import clear_time_limit
from djtasks.core.exceptions import NotRegistered
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import record, sleep_then_record

RECORD = "tests.testapp.tasks.record"
SLEEPER = "tests.testapp.tasks.sleep_then_record"


def online(process) -> str:
    worker_id = process.name  # the fixture gives each worker a name of its own (-n)
    assert wait_for(lambda: worker_id in control.workers(), timeout=30), process.log()[-3000:]
    return worker_id


@pytest.mark.django_db(transaction=True)
def test_broadcast_rate_limit_in_celerys_form_sets_the_rate_the_workers_apply(worker):
    worker_id = online(worker())
    try:
        [reply] = control.broadcast(
            "rate_limit", arguments={"task_name": RECORD, "rate_limit": "1/s"}, reply=True, timeout=10
        )
        assert reply.worker == worker_id and reply.ok, reply
        assert reply.data["rate"] == "1/s (one start every 1000 ms)"
        assert get_broker().rate_override(RECORD) == 1000
        # djtasks' own names through broadcast set it too (before: the workers only reported).
        [reply] = control.broadcast("rate_limit", {"task": RECORD, "rate": "2/s"}, timeout=10)
        assert reply.ok and get_broker().rate_override(RECORD) == 500
        # Celery's keyword form of control.rate_limit.
        [reply] = control.rate_limit(task_name=RECORD, rate_limit="4/s", destination=[worker_id], reply=True)
        assert reply.ok and get_broker().rate_override(RECORD) == 250
    finally:
        control.rate_limit(RECORD, "none", timeout=10)
    assert get_broker().rate_override(RECORD) is None


@pytest.mark.django_db(transaction=True)
def test_time_limit_takes_celerys_keywords_and_reply(worker):
    worker_id = online(worker("-c", "1"))
    [reply] = control.time_limit(SLEEPER, hard=1, reply=True, timeout=10)
    assert reply.worker == worker_id and reply.ok and (reply.data["soft"], reply.data["hard"]) == (None, 1)
    [reply] = control.broadcast(
        "time_limit", arguments={"task_name": SLEEPER, "soft": 5, "hard": 10}, reply=True, timeout=10
    )
    assert reply.ok and (reply.data["soft"], reply.data["hard"]) == (5, 10)
    [reply] = control.time_limit(SLEEPER, soft=0.5, hard=1, destination=[worker_id], timeout=10)
    time.sleep(1.5)  # children re-read the overrides at most once a second
    result = sleep_then_record.delay("limited", 20)
    assert wait_for(lambda: TaskRecord.objects.get(pk=result.id).state == "FAILURE", timeout=30)
    control.time_limit(SLEEPER, timeout=10)  # Celery's time_limit(name): no limits
    [reply] = control.broadcast("time_limit", {"task": SLEEPER}, timeout=10)  # djtasks' form: report
    assert (reply.data["soft"], reply.data["hard"]) == (None, None)


@pytest.mark.django_db(transaction=True)
def test_revoke_takes_one_id_a_signal_and_celerys_broadcast_form(worker, ledger):
    online(worker("-c", "1"))
    running = sleep_then_record.delay("victim", 30)
    assert wait_for(lambda: "start victim" in ledger.read_text(), timeout=30)
    waiting, other = record.delay("never"), record.delay("never either")
    # A single id (before: its characters were revoked one by one), Celery's broadcast form.
    assert [r.data for r in control.revoke(waiting.id, reply=True, timeout=5)] == ["revoked"]
    control.broadcast("revoke", arguments={"task_id": other.id}, reply=True)
    assert TaskRecord.objects.get(pk=other.id).state == "REVOKED"
    with pytest.raises(ValueError, match="SIGKILL"):
        control.revoke(running.id, terminate=True, signal="SIGUSR1")
    [reply] = control.revoke(running.id, terminate=True, signal="SIGKILL")
    assert reply.data == "revoked; terminating it"
    assert wait_for(
        lambda: TaskRecord.objects.get(pk=running.id).exception_type == "djtasks.exceptions.Terminated", timeout=20
    )
    assert "never" not in ledger.read_text()
    later = sleep_then_record.delay("second", 30)
    assert wait_for(lambda: "start second" in ledger.read_text(), timeout=30)
    assert [r.data for r in control.terminate(later.id, signal="SIGTERM")] == ["revoked; terminating it"]
    assert wait_for(lambda: TaskRecord.objects.get(pk=later.id).state == "REVOKED", timeout=20)


@pytest.mark.django_db(transaction=True)
def test_inspect_gives_celerys_object_and_reply_shapes(worker):
    worker_id = online(worker())
    inspect = control.inspect(timeout=10)
    assert inspect.ping() == {worker_id: {"ok": "pong"}}
    assert RECORD in inspect.registered()[worker_id]
    assert inspect.stats()[worker_id]["concurrency"] == 2
    assert [q["name"] for q in inspect.active_queues()[worker_id]] == ["default"]
    assert inspect.active() == {worker_id: []} and inspect.reserved() == {worker_id: []}
    assert control.inspect([worker_id], timeout=10).scheduled() == {worker_id: []}
    assert control.inspect(["gone.1"], timeout=0.5).ping() is None  # Celery: None when nobody answers


@pytest.mark.django_db(transaction=True)
def test_broadcast_keywords_destination_pattern_limit_callback_and_reply(worker):
    first, second = online(worker("-n", "first.w@%h")), online(worker("-n", "second.w@%h"))
    assert [r.worker for r in control.broadcast("ping", None, [second], timeout=10)] == [second]
    assert [r.worker for r in control.broadcast("ping", pattern=first, timeout=10)] == [first]
    assert [r.worker for r in control.broadcast("ping", pattern="first.*", timeout=10)] == [first]
    regex = f"^{first.replace('.', '[.]')}$"
    assert [r.worker for r in control.ping(pattern=regex, matcher="pcre", timeout=10)] == [first]
    seen = []
    started = time.monotonic()
    replies = control.broadcast("ping", limit=1, callback=seen.append, timeout=10)
    assert len(replies) == 1 and time.monotonic() - started < 5 and seen == [{replies[0].worker: "pong"}]
    assert sorted(r.worker for r in control.ping(timeout=10)) == sorted([first, second])
    started = time.monotonic()
    assert control.shutdown(destination=[first], reply=False) == []  # sent, not waited for
    assert time.monotonic() - started < 1
    assert wait_for(lambda: control.workers() == [second], timeout=30)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: control.broadcast("ping", connection=object()), TypeError, "REDIS_URL"),
        (lambda: control.broadcast("ping", channel=object()), TypeError, "REDIS_URL"),
        (lambda: control.broadcast("ping", destination="w.1"), ValueError, "a list of worker ids"),
        (lambda: control.broadcast("ping", pattern="*", matcher="sql"), ValueError, "glob"),
        (lambda: control.broadcast("ping", limit=0), ValueError, "limit"),
        (lambda: control.broadcast("ping", callback=5), TypeError, "callback"),
        (lambda: control.broadcast("autoscale"), ValueError, "--autoscale"),
        (lambda: control.broadcast("autoscale", arguments={"max": 4, "min": 1}), ValueError, "pool_grow"),
        (lambda: control.add_consumer("mail", exchange="mail_ex"), ValueError, "no exchanges"),
        (lambda: control.add_consumer("mail", options={"x": 1}), ValueError, "no exchanges"),
        (lambda: control.broadcast("rate_limit", arguments={"task_name": RECORD}), ValueError, "rate"),
        (lambda: control.rate_limit(RECORD, b"1/s"), ValueError, "rate"),
        (lambda: control.revoke(["a", 5]), ValueError, "task id"),
        (lambda: control.revoke("x", signal=9.5), ValueError, "SIGKILL"),
        (lambda: control.ping(colour="red"), ValueError, "takes no argument"),
    ],
)
def test_celery_forms_djtasks_cannot_honour_are_refused_before_anything_is_sent(call, error, words, redis_server):
    with pytest.raises(error, match=words):
        call()
    assert get_broker().rate_override(RECORD) is None


ANY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=10), st.just(RECORD)
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["rate_limit", "time_limit", "revoke", "add_consumer", "pool_grow"]), value=ANY)
def test_any_value_in_celerys_argument_names_is_refused_cleanly_or_carried_out(command, value, redis_server):
    names = {
        "rate_limit": {"task_name": RECORD, "rate_limit": value},
        "time_limit": {"task_name": value, "soft": value, "hard": value},
        "revoke": {"task_id": value, "terminate": value, "signal": value},
        "add_consumer": {"queue": value, "exchange": value, "routing_key": value},
        "pool_grow": {"n": value},
    }
    try:
        control.broadcast(command, arguments=names[command], timeout=0.2)
    except (ValueError, NotRegistered):
        pass
    finally:
        control.rate_limit(RECORD, "none", timeout=0.2)
        clear_time_limit(RECORD)
