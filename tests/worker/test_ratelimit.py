"""Rate limits are shared by all workers, changeable at runtime, and never fail or block a task."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from djtasks import set_rate_limit
from djtasks.core.conf import get_settings
from djtasks.core.rates import parse_rate
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.outcome import db_lease
from djtasks.worker.recording import Recording
from djtasks.worker.start import Starter
from tests.support.ledger import start_gaps
from tests.support.waiting import wait_for
from tests.testapp.gated_tasks import capped, per_customer
from tests.testapp.tasks import add, limited, record

pytestmark = [pytest.mark.django_db(transaction=True)]


def starts(ledger, prefix):
    return sorted(float(line.split()[1]) for line in ledger.read_text().splitlines() if line.startswith(prefix))


def test_rates_parse_per_second_minute_and_hour():
    assert parse_rate("10/s") == 100.0
    assert parse_rate("10/m") == 6000.0
    assert parse_rate("10/h") == 360000.0
    assert parse_rate("5") == 200.0
    assert parse_rate(None) == 0.0
    with pytest.raises(ValueError):
        parse_rate("10/d")


def test_the_limit_holds_across_workers_and_others_are_not_blocked(worker, ledger):
    worker()
    worker()
    results = [limited.delay(f"l{i}") for i in range(5)]  # 2/s: spread over at least 2 s
    assert add.delay(1, 1).get(timeout=10) == 2  # an unlimited task is not held up behind them
    assert [r.get(timeout=60) for r in results] == [f"l{i}" for i in range(5)]
    assert len(starts(ledger, "l")) == 5  # each ran once
    gaps = start_gaps([r.id for r in results])  # as granted (a body may begin later: CI once saw 126 ms)
    assert min(gaps) >= 0.4, gaps  # 500 ms apart, less scheduling jitter
    assert all(r.state == "SUCCESS" for r in results)
    # Waits were forgiven: none counts towards the poison limit. (The last ack follows its commit:
    # the count of a task whose result just arrived may still be there for a moment.)
    deliveries = get_broker().queue_key("default", "deliveries")
    assert wait_for(lambda: not get_broker().client.hgetall(deliveries), timeout=5)


def test_a_rate_limit_changes_at_runtime_without_restart(worker, ledger):
    worker()
    set_rate_limit("tests.testapp.tasks.record", "1/s")
    try:
        time.sleep(1.2)  # workers re-read overrides within a second
        results = [record.delay(f"r{i}") for i in range(3)]
        assert [r.get(timeout=60) for r in results] == ["r0", "r1", "r2"]
        assert min(start_gaps([r.id for r in results])) >= 0.9
        assert get_broker().rate_overrides() == {"tests.testapp.tasks.record"}
    finally:
        set_rate_limit("tests.testapp.tasks.record", None)
    assert get_broker().rate_overrides() == set()


def test_an_override_lifts_a_declared_limit(worker, ledger):
    set_rate_limit("tests.testapp.tasks.limited", "0")
    worker()
    results = [limited.delay(f"u{i}") for i in range(4)]
    assert [r.get(timeout=30) for r in results] == [f"u{i}" for i in range(4)]
    times = starts(ledger, "u")
    assert times[-1] - times[0] < 1.5  # "2/s" would take at least 1.5 s


@pytest.mark.usefixtures("redis_server")
@pytest.mark.parametrize("gate", ["rate limit", "keyed rate limit", "concurrency cap"])
def test_a_start_a_gate_let_through_is_stamped_from_its_grant_not_from_before_it(gate, monkeypatch):
    # The batch reads its clock before the row lock and the gates: a start stamped from that read
    # could sit closer to the one before it than the limit spaced them (CI saw 0.87 s at 1/s),
    # so a record of the starts would show the limit broken when it held.
    broker = get_broker()
    config = get_settings()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    task, args, slow = {
        "rate limit": (limited, ("g",), "take_rate_slot"),
        "keyed rate limit": (per_customer, ("acme", 1), "take_keyed_rate_slot"),
        "concurrency cap": (capped, ("g",), "acquire_slot"),
    }[gate]
    granted = []
    grant = getattr(broker, slow)

    def slow_grant(*a, **kw):
        time.sleep(0.3)  # a slow lock, a slow Redis: anything between the clock read and the grant
        answer = grant(*a, **kw)
        granted.append(timezone.now())
        return answer

    monkeypatch.setattr(broker, slow, slow_grant)
    task_id = task.enqueue(*args).id
    [started] = starter.start(broker.claim(["default"], "test", 30000, limit=1, deep=0))
    assert len(granted) == 1
    row = TaskRecord.objects.get(pk=task_id)
    assert started.started_at == row.started_at >= granted[0] - timedelta(milliseconds=5)
    assert row.lease_expires_at == row.started_at + db_lease(config)
