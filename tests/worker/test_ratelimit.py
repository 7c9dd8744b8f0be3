"""Rate limits are shared by all workers, changeable at runtime, and never fail or block a task."""

import time

import pytest

from djtasks import set_rate_limit
from djtasks.core.rates import parse_rate
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
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
    times = starts(ledger, "l")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.4  # 500 ms apart, less scheduling jitter
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
        times = sorted(TaskRecord.objects.filter(pk__in=[r.id for r in results]).values_list("started_at", flat=True))
        assert min((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)) >= 0.9
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
