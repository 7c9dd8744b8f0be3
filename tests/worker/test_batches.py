"""A batch costs one transaction to start and one to record, whatever its size: the hot path's statements."""

import dataclasses
import multiprocessing
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.connection import AbstractConnection

from djtasks import publisher
from djtasks.core.conf import get_settings
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.child import Child
from djtasks.worker.execute import Runner
from djtasks.worker.protocol import ChildLimits
from djtasks.worker.recording import Recording
from djtasks.worker.start import Starter
from tests.testapp.gated_tasks import debounced_per_user
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]


def statements(queries: CaptureQueriesContext) -> list[str]:
    """Each statement's kind: BEGIN, COMMIT, SELECT, UPDATE, or "4 times: UPDATE" for an executemany."""
    kinds = []
    for query in queries.captured_queries:
        match = re.match(r"(\d+ times: )?(\w+)", query["sql"])
        assert match is not None
        kinds.append((match[1] or "") + match[2].upper())
    return kinds


def test_four_claims_start_in_one_read_and_one_executemany_and_succeed_in_one_executemany():
    config, broker = get_settings(), get_broker()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    runner = Runner(recording, "w.1", soft_time_limit=None, time_limit=None)
    ids = [add.enqueue(i, i).id for i in range(4)]
    claims = broker.claim(["default"], "test", 30000, limit=4, deep=0)
    assert sorted(claim.id for claim in claims) == sorted(ids)

    with CaptureQueriesContext(connection) as start:
        started = starter.start(claims)
    done = [(item, runner.execute(item)) for item in started]
    with CaptureQueriesContext(connection) as finish:
        recording.finish(done)

    # PostgreSQL: one UPDATE ... FROM (VALUES ...) for the batch; SQLite: one executemany.
    update = "UPDATE" if connection.vendor == "postgresql" else "4 times: UPDATE"
    assert statements(start) == ["BEGIN", "SELECT", update, "COMMIT"]
    assert statements(finish) == ["BEGIN", update, "COMMIT"]
    assert sorted(TaskRecord.objects.values_list("state", "result", "attempts")) == [
        ("SUCCESS", 2 * i, 1) for i in range(4)
    ]
    assert broker.queue_stats()["default"]["reserved"] == 0


def test_an_idle_claim_starts_in_a_read_and_one_update_and_its_outcome_is_one_statement_of_its_own():
    # The idle round trip: the start is an unlocked read then a compare-and-set UPDATE, the
    # outcome its fenced UPDATE, each in autocommit (a single statement is atomic): BEGIN, the
    # lock and COMMIT were four round trips on the critical path (and a one-row executemany,
    # which psycopg runs in its pipeline, cost more CPU than a plain UPDATE).
    config, broker = get_settings(), get_broker()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    runner = Runner(recording, "w.1", soft_time_limit=None, time_limit=None)
    task_id = add.enqueue(2, 3).id
    claims = broker.claim(["default"], "test", 30000, limit=1, deep=0)

    with CaptureQueriesContext(connection) as start:
        started = starter.start(claims)
    done = [(item, runner.execute(item)) for item in started]
    with CaptureQueriesContext(connection) as finish:
        recording.finish(done)

    assert statements(start) == ["SELECT", "UPDATE"]
    assert statements(finish) == ["UPDATE"]
    row = TaskRecord.objects.get(pk=task_id)
    assert (row.state, row.result, row.attempts, row.lease_expires_at) == ("SUCCESS", 5, 1, None)
    assert broker.queue_stats()["default"]["reserved"] == 0


def _interfere(change, *, unlocked: bool = False) -> CaptureQueriesContext:
    """Run `change` on another connection (another thread) right after this thread's first SELECT.

    unlocked: after its first SELECT outside a transaction only (the idle start's unlocked read);
    one inside would hold the lock `change` waits for.
    """
    done: list[bool] = []

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        result = execute(sql, params, many, context)
        if not done and not (unlocked and connection.in_atomic_block) and sql.lstrip().upper().startswith("SELECT"):
            done.append(True)
            thread = threading.Thread(target=lambda: (change(), connections.close_all()))
            thread.start()
            thread.join()
        return result

    return connection.execute_wrapper(wrapper)


@pytest.mark.parametrize("change", ["lease extended", "revoked", "started elsewhere"])
def test_an_idle_start_that_a_write_overtook_after_its_read_is_decided_again_on_the_locked_row(change):
    # The unlocked read and the UPDATE are two statements: a live attempt's lease extended, a
    # revoke or another worker's start in between must fence the UPDATE off, as the lock did.
    config, broker = get_settings(), get_broker()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    task_id = add.enqueue(2, 3).id
    past = timezone.now() - timedelta(seconds=5)
    TaskRecord.objects.filter(pk=task_id).update(lease_token="old", lease_expires_at=past, attempts=1)
    claims = broker.claim(["default"], "test", 30000, limit=1, deep=0)
    writes = {
        "lease extended": {"lease_expires_at": timezone.now() + timedelta(seconds=60)},
        "revoked": {"state": "REVOKED", "finished_at": timezone.now()},
        "started elsewhere": {"lease_token": "other", "attempts": 2, "lease_expires_at": None},
    }

    with _interfere(lambda: TaskRecord.objects.filter(pk=task_id).update(**writes[change])):
        started = starter.start(claims)

    row = TaskRecord.objects.get(pk=task_id)
    if change == "started elsewhere":  # its lease is gone: this start is decided again and runs
        assert [s.claim.id for s in started] == [task_id]
        assert (row.attempts, row.lease_token) == (3, claims[0].token)
    else:
        assert started == []
        assert (row.attempts, row.lease_token) == (1, "old")
    assert row.worker_ids == (["w.1"] if started else [])


def test_an_idle_start_never_runs_the_arguments_a_debounced_call_replaced():
    # A debounced call rewrites a waiting row's arguments and start time (locks.replace_waiting)
    # and returns its id: that write changes none of the columns the idle start compares, so a
    # start between its unlocked read and its UPDATE ran the replaced arguments (seen at load in
    # tests/calling/test_debounce.py). Such rows take the locked path: what starts is the row as
    # it is, and a call after the start makes a new row.
    config, broker = get_settings(), get_broker()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    first = debounced_per_user.delay("race", 1)
    publisher.flush()
    TaskRecord.objects.filter(pk=first.id).update(eta=timezone.now() - timedelta(seconds=1))  # due
    broker.client.zrem(broker.queue_key("default", "scheduled"), first.id)
    broker.client.zadd(broker.queue_key("default", "ready"), {first.id: 1})
    claims = broker.claim(["default"], "test", 30000, limit=1, deep=0)
    calls: list[str] = []

    with _interfere(lambda: calls.append(debounced_per_user.delay("race", 2).id), unlocked=True):
        started = starter.start(claims)

    row = TaskRecord.objects.get(pk=first.id)
    if started:  # it ran: with the arguments its row has, and no call since returned its id
        assert started[0].record.args == row.args == ["race", 1] and row.state == "STARTED"
        assert first.id not in calls
        assert debounced_per_user.delay("race", 3).id != first.id
    else:  # a call replaced them first: the row waits for its new start time
        assert calls == [first.id] and row.args == ["race", 2] and row.state == "PENDING"


def test_an_idle_claim_whose_envelope_is_malformed_is_set_aside_not_run_though_its_row_is_runnable():
    # The idle start reads the row without the batch's decoding step in front of it: the
    # envelope is still checked first, and a malformed one goes the locked path, which sets it aside.
    config, broker = get_settings(), get_broker()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    task_id = add.enqueue(2, 3).id
    claim = broker.claim(["default"], "test", 30000, limit=1, deep=0)[0]

    started = starter.start([dataclasses.replace(claim, envelope=b'{"id": 7, "q": []}')])

    assert started == []
    row = TaskRecord.objects.get(pk=task_id)
    assert (row.state, row.attempts) == ("PENDING", 0)
    assert DeadLetter.objects.filter(task_id=task_id).count() == 1


class RoundTrips:
    """Count this process's own round trips to Redis (a pipeline is one): the server's own count
    (INFO's total_reads_processed) takes in any other client too, such as an earlier test's worker
    still stopping, and did, at load."""

    def __init__(self, monkeypatch):
        self.count = 0
        send = AbstractConnection.send_packed_command

        def counted(connection, *args, **kwargs):
            self.count += 1
            return send(connection, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)


def test_outcomes_written_with_the_next_start_are_acked_with_the_claim_after_it(monkeypatch):
    config, broker = get_settings(), get_broker()
    recording = Recording(broker, config, "w.1")
    starter = Starter(recording, config, "w.1")
    runner = Runner(recording, "w.1", soft_time_limit=None, time_limit=None)
    ids = [add.enqueue(i, i).id for i in range(9)]
    first = recording.claim(["default"], "one", 30000, limit=4, deep=0).claims
    done = [(item, runner.execute(item)) for item in starter.start(first)]
    second = recording.claim(["default"], "two", 30000, limit=4, deep=0).claims

    starter.start(second, done)  # the first batch's outcomes commit with the second's start...
    assert TaskRecord.objects.filter(pk__in=[c.id for c in first], state="SUCCESS").count() == 4
    assert broker.queue_stats()["default"]["reserved"] == 8  # ...and their ack waits for the next claim
    trips = RoundTrips(monkeypatch)
    third = recording.claim(["default"], "three", 30000, limit=4, deep=0).claims
    assert trips.count == 1  # the claim, with the acks in it
    assert broker.queue_stats()["default"]["reserved"] == 4 + len(third)
    assert sorted(c.id for c in [*first, *second, *third]) == sorted(ids[:9][: 8 + len(third)])
    trips.count = 0
    recording.ack_deferred()  # nothing is deferred now: no round trip
    assert trips.count == 0


def test_a_deep_queue_is_started_in_batches_of_the_default_prefetch():
    # Each batch costs a transaction, its commit and a claim's round trip: per drained task on
    # PostgreSQL, worker CPU 280-300 us with batches of 8 and 220-225 with 16 (benchmarks/run
    # --budget-only). A child holds one batch unrecorded, so the batch is bounded: PREFETCH.
    assert get_settings().PREFETCH == 16
    total = 800
    with transaction.atomic():
        for i in range(total):
            add.delay(i, 0)
    mine, theirs = multiprocessing.Pipe()
    reports = threading.Thread(target=lambda: _read_all(theirs), daemon=True)
    reports.start()
    child = Child(0, "w.deep", ["default"], mine, ChildLimits(max_tasks=total), get_settings(), stop=threading.Event())
    with CaptureQueriesContext(connection) as queries:
        child.run()
    mine.close()
    assert TaskRecord.objects.filter(state="SUCCESS").count() == total
    reads = [sql for sql in statements(queries) if sql == "SELECT"]
    # Batches of 16 while more than 16 are ready (the last 16 one by one, so idle children could
    # share them), a few single claims if a task took longer than FLUSH_AFTER: 65 and a margin.
    # With batches of 8: about 107.
    assert len(reads) <= 80, len(reads)


def _read_all(end) -> None:
    try:
        while True:
            end.recv_bytes()
    except (EOFError, OSError):
        pass
