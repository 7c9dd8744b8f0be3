"""The outbox sweep behind a backlog: it runs less often when it takes long, and still publishes what is missing."""

import math
import time
from types import SimpleNamespace

import pytest
from django.db import transaction

from djtasks.calling import publisher
from djtasks.core.conf import get_settings
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker import maintenance
from djtasks.worker.duties import Duties
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]


def test_a_sweep_of_few_rows_keeps_its_interval_and_a_long_one_delays_the_next_up_to_the_cap():
    batch = maintenance.SWEEP_BATCH
    assert maintenance.next_sweep(100.0, 0, 2.0) == 102.0
    assert maintenance.next_sweep(100.0, batch, 2.0) == 102.0
    assert maintenance.next_sweep(100.0, 5 * batch, 2.0) == 110.0  # one more interval per page read
    assert maintenance.next_sweep(100.0, 1000 * batch, 2.0) == 100.0 + maintenance.SWEEP_MAX_WAIT
    assert maintenance.next_sweep(100.0, 0, 45.0) == 145.0  # a longer SWEEP_INTERVAL is kept


def duties_of_sweep_alone() -> Duties:
    pool = SimpleNamespace(
        worker_id="pacing@test",
        db="default",
        config=get_settings(),
        queues=[get_settings().DEFAULT_QUEUE],
        stopping=False,
        autoscale=None,
        autoscale_cooldown=30.0,
    )
    duties = Duties(pool, remote=SimpleNamespace())
    duties.beat.tick = lambda: None
    duties.beat_started = True
    timers = duties.timers
    timers.control = timers.heartbeat = timers.reap = timers.expire = timers.checkpoint = math.inf
    return duties


def test_the_parent_paces_a_long_sweep_and_the_next_one_still_publishes_a_row_redis_lost(monkeypatch):
    duties = duties_of_sweep_alone()
    real_sweep = maintenance.sweep_rows
    ran: list[float] = []

    def long_sweep(broker, config, *, full):
        ran.append(time.monotonic())
        published, _ = real_sweep(broker, config, full=full)
        return published, 4 * maintenance.SWEEP_BATCH  # as if it read four pages

    monkeypatch.setattr(maintenance, "sweep_rows", long_sweep)
    began = time.monotonic()
    duties.run()
    assert len(ran) == 1
    interval = get_settings().SWEEP_INTERVAL
    assert duties.timers.sweep - began >= 4 * interval - 0.05  # not SWEEP_INTERVAL
    duties.run()
    assert len(ran) == 1  # not due yet
    with transaction.atomic():
        result = add.delay(1, 2)
    queue = get_settings().DEFAULT_QUEUE
    broker = get_broker()
    publisher.flush()  # the publish sent without waiting has landed...
    broker.client.flushdb()  # ...and is lost
    assert broker.known_where([(result.id, queue)]) == [False]
    time.sleep(get_settings().SWEEP_GRACE + 0.1)  # older than the grace a publish has
    duties.timers.sweep = 0.0  # its time has come
    duties.run()
    assert len(ran) == 2
    assert broker.known_where([(result.id, queue)]) == [True]
    assert TaskRecord.objects.get(pk=result.id).state == "PENDING"


def test_a_sweep_of_few_rows_on_a_slow_machine_keeps_its_interval(monkeypatch):
    """Paced by rows read, not by time: a sweep slowed by load keeps SWEEP_INTERVAL (tests wait on it)."""
    duties = duties_of_sweep_alone()
    real_sweep = maintenance.sweep_rows

    def slow_sweep(broker, config, *, full):
        time.sleep(0.3)
        return real_sweep(broker, config, full=full)

    monkeypatch.setattr(maintenance, "sweep_rows", slow_sweep)
    began = time.monotonic()
    duties.run()
    assert duties.timers.sweep - began == pytest.approx(get_settings().SWEEP_INTERVAL, abs=0.01)
