"""The fault suite: real workers, a real redis-server, and a ledger each test task appends to.

Every test enqueues work, injects one fault, lets the system recover and then checks the
ledger against the rows: lost tasks (no SUCCESS) must be 0; a task may start twice only when
the fault struck while it ran (its first attempt never committed), and must never complete
twice except where a crash fell after its side effect and before its commit. Each test adds
a row to the table printed at the end of the run.
"""

import json
import os
import random
import signal
import sqlite3
import time

import pytest
from django.db import connection, connections, transaction

from djtasks.core.conf import get_settings
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.ledger import check, read, wait_all_done
from tests.support.waiting import wait_for
from tests.testapp.tasks import hang, leak, work

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def enqueue(n, seconds=0.0, prefix="k", **options):
    keys = [f"{prefix}{i}" for i in range(n)]
    with transaction.atomic():
        ids = [work.apply_async((key, seconds), **options).id for key in keys]
    return keys, ids


def ended(ledger, count):
    return lambda: sum(1 for e in read(ledger) if e.kind == "end") >= count


def report(fault_report, fault, verdict, notes=""):
    if verdict.explained:
        notes += f"; {len(verdict.explained)} completed twice: killed between side effect and commit"
    fault_report(
        fault=fault,
        enqueued=verdict.enqueued,
        lost=len(verdict.lost),
        ran_twice=len(verdict.started_twice),
        recovery_s=verdict.recovery_s,
        notes=notes,
    )


@pytest.mark.timeout(300)
def test_sigkill_of_the_whole_worker_mid_task(worker, ledger, fault_report):
    keys, ids = enqueue(200, seconds=0.05)
    first = worker("-c", "2")
    assert wait_for(ended(ledger, 60), timeout=60)
    os.killpg(first.pid, signal.SIGKILL)
    killed_at = time.time()
    worker("-c", "2")
    assert wait_all_done(ids, timeout=90)
    verdict = check(ledger, keys, ids, since=killed_at, kills=[killed_at])
    assert verdict.lost == [] and verdict.unexplained == []
    assert len(verdict.started_twice) <= 2 * get_settings().PREFETCH  # at most the claims both children held
    assert verdict.recovery_s is None or verdict.recovery_s < 60
    report(
        fault_report,
        "SIGKILL whole worker (parent + 2 children)",
        verdict,
        "re-runs = tasks in hand at the kill; back after lease + reap",
    )


def test_sigkill_of_single_children(worker, ledger, fault_report):
    keys, ids = enqueue(150, seconds=0.05)
    proc = worker("-c", "2")
    kills: list[float] = []
    for threshold in (30, 60, 90):
        assert wait_for(ended(ledger, threshold), timeout=60)
        children = proc.children()
        if children:
            os.kill(children[0], signal.SIGKILL)
            kills.append(time.time())
    killed_at = time.time()
    assert wait_all_done(ids, timeout=90)
    verdict = check(ledger, keys, ids, kills=kills)
    assert verdict.lost == [] and verdict.unexplained == []
    assert len(verdict.started_twice) <= len(kills) * get_settings().PREFETCH  # at most the batch each child held
    assert proc.process.poll() is None
    report(
        fault_report,
        f"SIGKILL of single children ({len(kills)}x)",
        verdict,
        f"handed back at once; all done {time.time() - killed_at:.1f} s after the last kill",
    )


def test_sigterm_with_tasks_longer_than_the_grace_period(worker, ledger, fault_report):
    keys, ids = enqueue(4, seconds=4, prefix="long")
    first = worker("-c", "2", "--shutdown-grace", "1.5")
    assert wait_for(lambda: sum(1 for e in read(ledger) if e.kind == "start") >= 2, timeout=30)
    began = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0
    stopped_in = time.monotonic() - began
    assert stopped_in < 5
    second_started = time.time()
    worker("-c", "2")
    assert wait_all_done(ids, timeout=60)
    verdict = check(ledger, keys, ids, since=second_started)
    assert verdict.lost == [] and verdict.completed_twice == []
    assert len(verdict.started_twice) == 2  # the two cut off at the grace ran again, once
    report(
        fault_report,
        "SIGTERM, tasks longer than the grace (1.5 s)",
        verdict,
        f"worker exited 0 in {stopped_in:.1f} s; the 2 running were handed back",
    )


@pytest.mark.timeout(300)
def test_redis_down_for_30_seconds_during_enqueues_and_work(worker, ledger, fault_report, redis_server):
    keys, ids = enqueue(100, seconds=0.05, prefix="before")
    worker("-c", "2")
    assert wait_for(ended(ledger, 20), timeout=60)
    redis_server.stop()
    stopped = time.monotonic()
    during_keys, during_ids, slowest = [], [], 0.0
    while time.monotonic() - stopped < 30:
        began = time.monotonic()
        key = f"during{len(during_keys)}"
        during_ids.append(work.delay(key, 0.0).id)  # the caller never fails
        during_keys.append(key)
        slowest = max(slowest, time.monotonic() - began)
        time.sleep(0.1)
    redis_server.start()  # without persistence: Redis comes back empty
    restarted = time.monotonic()
    all_ids = ids + during_ids
    assert wait_all_done(all_ids, timeout=120)
    recovery = time.monotonic() - restarted
    verdict = check(ledger, keys + during_keys, all_ids)
    assert verdict.lost == [] and verdict.completed_twice == []
    verdict.recovery_s = recovery
    report(
        fault_report,
        "redis-server stopped 30 s (restarts empty)",
        verdict,
        f"{len(during_ids)} enqueued while down, slowest call {slowest * 1000:.0f} ms",
    )


def test_redis_frozen_with_sigstop(worker, ledger, fault_report, redis_server):
    keys, ids = enqueue(60, seconds=0.05, prefix="frozen")
    worker("-c", "2")
    assert wait_for(ended(ledger, 10), timeout=60)
    redis_server.pause()
    slowest = 0.0
    try:
        extra = []
        for i in range(5):
            began = time.monotonic()
            extra.append(work.delay(f"stopped{i}", 0.0).id)
            slowest = max(slowest, time.monotonic() - began)
        time.sleep(8)
    finally:
        redis_server.resume()
    resumed = time.monotonic()
    all_ids = ids + extra
    assert wait_all_done(all_ids, timeout=90)
    verdict = check(ledger, keys + [f"stopped{i}" for i in range(5)], all_ids)
    verdict.recovery_s = time.monotonic() - resumed
    assert verdict.lost == [] and verdict.completed_twice == []
    assert slowest < 8  # every Redis call has a timeout (3 s here)
    report(
        fault_report,
        "redis-server frozen 8 s (SIGSTOP)",
        verdict,
        f"slowest enqueue while frozen {slowest:.1f} s (socket timeout 3 s)",
    )


def test_flushall_with_work_queued_delayed_and_running(worker, ledger, fault_report):
    keys, ids = enqueue(120, seconds=0.05, prefix="q")
    delayed_keys, delayed_ids = enqueue(10, prefix="d", countdown=4)
    due = time.time() + 4
    worker("-c", "2")
    assert wait_for(ended(ledger, 20), timeout=60)
    get_broker().client.flushall()
    flushed = time.monotonic()
    all_ids, all_keys = ids + delayed_ids, keys + delayed_keys
    assert wait_all_done(all_ids, timeout=90)
    verdict = check(ledger, all_keys, all_ids)
    verdict.recovery_s = time.monotonic() - flushed
    assert verdict.lost == [] and verdict.completed_twice == []
    early = [e for e in read(ledger) if e.kind == "start" and e.key.startswith("d") and e.at < due - 0.05]
    assert early == []
    report(
        fault_report,
        "FLUSHALL with 120 queued, 10 delayed, 2 running",
        verdict,
        "rebuilt from the database; delayed ones not before due",
    )


def test_the_database_unavailable_while_tasks_finish(worker, ledger, fault_report):
    keys, ids = enqueue(40, seconds=0.2, prefix="db")
    worker("-c", "2")
    assert wait_for(ended(ledger, 4), timeout=60)
    with outage(seconds=6):
        pass
    back = time.monotonic()
    assert wait_all_done(ids, timeout=90)
    verdict = check(ledger, keys, ids)
    verdict.recovery_s = time.monotonic() - back
    assert verdict.lost == [] and verdict.completed_twice == []
    assert verdict.started_twice == []  # results were kept and written, not re-run
    report(
        fault_report,
        f"database unavailable 6 s ({connection.vendor})",
        verdict,
        "outcomes kept in the child and written when it returned",
    )


class outage:
    """Make the test database refuse work for a while (SQLite: an exclusive lock; PostgreSQL:
    connections refused and existing ones terminated)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        if connection.vendor == "sqlite":
            lock = sqlite3.connect(connection.settings_dict["NAME"], timeout=30)
            lock.execute("BEGIN EXCLUSIVE")
            time.sleep(self.seconds)
            lock.rollback()
            lock.close()
        else:
            name = connection.settings_dict["NAME"]
            connections.close_all()
            with maintenance_cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()",
                    [name],
                )
                time.sleep(self.seconds)
                cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        return self

    def __exit__(self, *exc):
        return False


def maintenance_cursor():
    import psycopg

    settings = connection.settings_dict
    conn = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname="postgres", autocommit=True
    )
    return conn.cursor()


@pytest.mark.timeout(600)
def test_ten_thousand_malformed_messages_mixed_with_valid_ones(worker, ledger, fault_report):
    rng = random.Random(20261121)
    broker = get_broker()
    ready, wake = broker.queue_key("default", "ready"), broker.wake_key("default")
    keys, ids = [], []
    pipe = broker.client.pipeline(transaction=False)
    for i in range(10_000):
        kind = i % 5
        if kind == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        elif kind == 1:
            raw = json.dumps({"v": rng.choice([0, 2, "1", None]), "id": f"bad{i}", "q": "default"}).encode()
        elif kind == 2:
            raw = json.dumps({"v": 1, "id": f"bad{i}", "q": rng.choice(["", 7, None]), "p": 0}).encode()
        elif kind == 3:
            raw = json.dumps({"v": 1, "id": f"bad{i}", "q": "default", "p": rng.choice([1e9, "x", True])}).encode()
        else:
            raw = json.dumps({"v": 1, "id": f"bad{i}", "q": "default", "p": 0}).encode()  # no such row
        pipe.hset(broker.queue_key("default", "messages"), f"bad{i}", raw)
        pipe.zadd(ready, {f"bad{i}": 100 * 10**13 + i})
    pipe.lpush(wake, "1")
    pipe.execute()
    keys, ids = enqueue(500, prefix="ok")
    proc = worker("-c", "2")
    assert wait_all_done(ids, timeout=240)
    assert wait_for(lambda: DeadLetter.objects.count() == 10_000, timeout=240, interval=0.5)
    verdict = check(ledger, keys, ids)
    assert verdict.lost == [] and verdict.started_twice == []
    assert proc.process.poll() is None
    report(
        fault_report,
        "10,000 malformed messages + 500 valid",
        verdict,
        "all 10,000 dead-lettered with a reason; no worker or child died",
    )


def test_a_hanging_task_and_a_leaking_task(worker, ledger, fault_report):
    proc = worker("-c", "2", "--max-memory-per-child", str(150 * 1024))
    hung = hang.delay("hung")
    leaks = [leak.delay(f"leak{i}", 30) for i in range(8)]
    keys, ids = enqueue(40, prefix="beside")
    assert wait_all_done(ids + [r.id for r in leaks], timeout=120)
    assert wait_for(lambda: TaskRecord.objects.get(pk=hung.id).state == "FAILURE", timeout=30)
    assert TaskRecord.objects.get(pk=hung.id).exception_type == "djtasks.exceptions.TimeLimitExceeded"
    verdict = check(ledger, keys, ids)
    assert verdict.lost == [] and verdict.started_twice == []
    assert len({r.get(timeout=1) for r in leaks}) >= 2  # leaking children were replaced
    assert proc.process.poll() is None
    report(
        fault_report,
        "a hanging task (1 s hard limit) + 8 leaking tasks",
        verdict,
        "hung child killed and replaced; leaky children recycled, nothing interrupted",
    )


def test_one_message_delivered_three_times(worker, ledger, fault_report):
    broker = get_broker()
    keys, ids = enqueue(1, seconds=1.0, prefix="dup")
    task_id = ids[0]
    envelope = broker.client.hget(broker.queue_key("default", "messages"), task_id)
    worker("-c", "2")
    assert wait_for(lambda: any(e.kind == "start" for e in read(ledger)), timeout=30)
    broker.client.zadd(broker.queue_key("default", "ready"), {task_id: 0})  # second copy, while it runs
    broker.client.lpush(broker.wake_key("default"), "1")
    assert wait_all_done(ids, timeout=30)
    broker.client.hset(broker.queue_key("default", "messages"), task_id, envelope)  # third copy, after it finished
    broker.client.zadd(broker.queue_key("default", "ready"), {task_id: 0})
    broker.client.lpush(broker.wake_key("default"), "1")
    assert wait_for(lambda: broker.known([task_id]) == [False], timeout=30)
    verdict = check(ledger, keys, ids)
    assert verdict.started_twice == [] and verdict.lost == []
    report(fault_report, "one message delivered three times", verdict, "ran once; copies acked and dropped")
