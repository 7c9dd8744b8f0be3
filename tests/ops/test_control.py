"""Remote control against real worker processes: every command changes or reports what it should."""

import time

import psutil
import pytest
from django.core.management import call_command
from django.db import transaction

from djtasks import control
from djtasks.core.conf import get_settings
from djtasks.models import TaskRecord
from tests.support.ledger import start_gaps
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, record, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def worker_id(process) -> str:
    return process.name


def online(*processes) -> list[str]:
    ids = [worker_id(p) for p in processes]
    assert wait_for(lambda: set(ids) <= set(control.workers()), timeout=30), control.workers()
    return ids


def only(replies):
    assert len(replies) == 1 and replies[0].ok, replies
    return replies[0].data


def test_ping_and_status_reach_every_live_worker(worker):
    ids = online(worker(), worker())
    replies = control.ping(timeout=10)
    assert sorted(r.worker for r in replies) == sorted(ids)
    assert all(r.ok and r.data == "pong" for r in replies)
    rows = {row["worker"]: row for row in control.status()}
    assert set(rows) == set(ids) and all(row["concurrency"] == 2 for row in rows.values())
    assert control.ping(destination=[ids[1]], timeout=10)[0].worker == ids[1]


def test_a_command_to_a_worker_that_is_gone_times_out_with_a_clear_message(worker):
    [alive] = online(worker())
    began = time.monotonic()
    replies = control.ping(destination=[alive, "djtasks@nowhere.1"], timeout=1.5)
    assert time.monotonic() - began < 10
    assert replies[0].ok
    assert not replies[1].ok and replies[1].error == "no reply from djtasks@nowhere.1 within 1.5 s"


def test_inspect_active_reserved_scheduled_registered_stats_and_queues(worker):
    [wid] = online(worker("-c", "1"))
    later = add.apply_async((1, 2), countdown=120)
    assert add.delay(0, 0).get(timeout=30) == 0  # a fast task first: the child now claims batches
    with transaction.atomic():  # published together into a deep queue: the child reserves a batch
        quick = [add.delay(0, 0)]
        slow = sleep_then_record.delay("inspected", 4)  # runs second; the batch's rest waits behind it
        quick += [add.delay(i, i) for i in range(1, get_settings().PREFETCH + 8)]  # deeper than a batch
    assert wait_for(lambda: only(control.inspect("active", timeout=10)), timeout=20)
    [active] = only(control.inspect("active", timeout=10))
    assert active["id"] == slow.id and active["task_name"] == "tests.testapp.tasks.sleep_then_record"
    reserved = only(control.inspect("reserved", timeout=10))
    assert reserved and {r["id"] for r in reserved} <= {q.id for q in quick}
    scheduled = only(control.inspect("scheduled", timeout=10))
    assert [s["id"] for s in scheduled] == [later.id] and scheduled[0]["eta"]
    assert "tests.testapp.tasks.add" in only(control.inspect("registered", timeout=10))
    stats = only(control.inspect("stats", timeout=10))
    assert stats["concurrency"] == 1 and len(stats["pool"]) == 1 and stats["queues"] == ["default"]
    [queue] = only(control.inspect("queues", timeout=10))
    assert queue["name"] == "default" and queue["scheduled"] == 1
    assert all(q.get(timeout=30) == i * 2 for i, q in enumerate(quick))
    assert control.inspect("reserved", destination=[wid], timeout=10)[0].data == []


def test_revoke_through_control_stops_a_waiting_task_and_terminates_a_running_one(worker, ledger):
    online(worker("-c", "1"))
    running = sleep_then_record.delay("victim", 30)
    assert wait_for(lambda: "start victim" in ledger.read_text())
    waiting = record.delay("never")
    replies = control.revoke([waiting.id, running.id], terminate=True)
    assert [r.data for r in replies] == ["revoked", "revoked; terminating it"]
    assert wait_for(
        lambda: TaskRecord.objects.get(pk=running.id).exception_type == "djtasks.exceptions.Terminated", timeout=20
    )
    assert add.delay(1, 1).get(timeout=20) == 2
    assert "never" not in ledger.read_text() and "end victim" not in ledger.read_text()


def test_time_limit_changes_a_running_workers_limits(worker, ledger):
    online(worker("-c", "1"))
    [reply] = control.time_limit("tests.testapp.tasks.sleep_then_record", 0, 1, timeout=10)
    assert reply.ok and reply.data["hard"] == 1
    time.sleep(1.5)  # children re-read the overrides at most once a second
    result = sleep_then_record.delay("limited", 20)
    assert wait_for(lambda: TaskRecord.objects.get(pk=result.id).state == "FAILURE", timeout=30)
    assert TaskRecord.objects.get(pk=result.id).exception_type == "djtasks.exceptions.TimeLimitExceeded"
    control.time_limit("tests.testapp.tasks.sleep_then_record", 0, 0, timeout=10)
    time.sleep(1.5)
    assert sleep_then_record.delay("free", 1.5).get(timeout=30) == "free"


def test_add_and_cancel_consumer_change_the_queues_a_worker_reads(worker):
    online(worker())
    assert only(control.add_consumer("extra", timeout=10)) == "now consuming from 'extra'"
    assert add.apply_async((2, 3), queue="extra").get(timeout=20) == 5
    assert [q["name"] for q in only(control.inspect("queues", timeout=10))] == ["default", "extra"]
    assert only(control.cancel_consumer("extra", timeout=10)) == "no longer consuming from 'extra'"
    time.sleep(1.5)  # idle children pick up the new list when their wait for work ends
    ignored = add.apply_async((3, 4), queue="extra")
    time.sleep(2)
    assert TaskRecord.objects.get(pk=ignored.id).state == "PENDING"
    [refused] = control.cancel_consumer("default", timeout=10)
    assert not refused.ok and "only queue" in refused.error


def test_pool_grow_and_shrink_change_the_number_of_children(worker):
    process = worker()
    online(process)
    assert only(control.pool_grow(2, timeout=10)) == "pool grown by 2 to 4"
    assert wait_for(lambda: len(psutil.Process(process.pid).children()) == 4, timeout=20)
    assert only(control.pool_shrink(3, timeout=10)).startswith("pool shrunk by 3 to 1")
    assert wait_for(lambda: len(psutil.Process(process.pid).children()) == 1, timeout=30)
    time.sleep(1)
    assert len(psutil.Process(process.pid).children()) == 1  # the stopped children are not replaced
    assert only(control.inspect("stats", timeout=10))["concurrency"] == 1
    assert add.delay(4, 4).get(timeout=20) == 8
    [refused] = control.pool_shrink(1, timeout=10)
    assert not refused.ok and "at least one must stay" in refused.error


def test_shutdown_stops_only_the_destination_worker_warmly(worker):
    first, second = worker(), worker()
    ids = online(first, second)
    assert only(control.shutdown(destination=[ids[0]], timeout=10)) == "warm shutdown started"
    assert first.wait(timeout=30) == 0
    assert second.process.poll() is None
    assert wait_for(lambda: control.workers() == [ids[1]], timeout=20)


def test_taskctl_prints_a_table_with_a_row_per_worker_and_json(worker, capsys):
    ids = online(worker(), worker())
    call_command("taskctl", "ping", "--timeout", "10")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["worker", "ok", "reply"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(ids)
    assert all(line.split()[1:] == ["ok", "pong"] for line in lines[1:])
    call_command("taskctl", "inspect", "stats", "--json", "--destination", ids[0], "--timeout", "10")
    assert '"concurrency": 2' in capsys.readouterr().out
    call_command("taskctl", "status")
    assert "2 worker(s) online" in capsys.readouterr().out


def test_rate_limit_changes_the_rate_every_worker_applies(worker, ledger):
    online(worker())
    try:
        [reply] = control.rate_limit("tests.testapp.tasks.record", "1/s", timeout=10)
        assert reply.ok and reply.data["rate"] == "1/s (one start every 1000 ms)"
        time.sleep(1.2)  # workers re-read overrides within a second
        results = [record.delay(f"r{i}") for i in range(3)]
        assert [r.get(timeout=60) for r in results] == ["r0", "r1", "r2"]
        assert min(start_gaps([r.id for r in results])) >= 0.9
    finally:
        [reply] = control.rate_limit("tests.testapp.tasks.record", "none", timeout=10)
    assert reply.data["rate"] == "declared (no limit)"
    with pytest.raises(ValueError):
        control.rate_limit("tests.testapp.tasks.record", "10/fortnight")
