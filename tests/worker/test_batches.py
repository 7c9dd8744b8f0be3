"""A batch costs one transaction to start and one to record, whatever its size: the hot path's statements."""

import multiprocessing
import re
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from djtasks.core.conf import get_settings
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.child import Child
from djtasks.worker.execute import Runner
from djtasks.worker.protocol import ChildLimits
from djtasks.worker.recording import Recording
from djtasks.worker.start import Starter
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


def reads(broker) -> int:
    return int(broker.client.info("stats")["total_reads_processed"])


def test_outcomes_written_with_the_next_start_are_acked_with_the_claim_after_it():
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
    before = reads(broker)
    third = recording.claim(["default"], "three", 30000, limit=4, deep=0).claims
    assert reads(broker) - before == 2  # the claim with the acks in it, and this INFO
    assert broker.queue_stats()["default"]["reserved"] == 4 + len(third)
    assert sorted(c.id for c in [*first, *second, *third]) == sorted(ids[:9][: 8 + len(third)])
    before = reads(broker)
    recording.ack_deferred()  # nothing is deferred now: no round trip
    assert reads(broker) - before == 1  # this INFO


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
