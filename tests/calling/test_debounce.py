"""Debounced tasks: a call while one waits replaces its arguments and moves its start; it runs once."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from django.db import DatabaseError, connection, transaction

from djtasks import publisher
from djtasks.exceptions import InvalidCall
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support import ledger as ledgers
from tests.support.waiting import wait_for
from tests.testapp.gated_tasks import debounced, debounced_per_user

pytestmark = [pytest.mark.django_db(transaction=True)]


def runs(path) -> list[ledgers.Entry]:
    return [e for e in ledgers.read(path) if e.kind == "start"]


def test_a_stream_of_calls_runs_once_with_the_latest_arguments_5_s_after_the_last(worker, ledger):
    worker("-c", "2")
    ids, last_call = set(), 0.0
    for value in range(8):
        ids.add(debounced.delay(value).id)
        last_call = time.time()
        time.sleep(0.4)
    [task_id] = ids
    assert wait_for(lambda: runs(ledger), timeout=30)
    time.sleep(1.0)  # nothing else runs
    [run] = runs(ledger)
    assert run.key == "debounced-7"
    assert run.at >= last_call + 5.0
    row = TaskRecord.objects.get(pk=task_id)
    assert row.args == [7] and row.state == "SUCCESS" and row.keys["duplicates"] == 7


def test_a_call_after_the_start_waits_as_a_new_row(worker, ledger):
    worker("-c", "1")
    first = debounced_per_user.delay("ann", 1)
    assert wait_for(lambda: runs(ledger), timeout=30)
    second = debounced_per_user.delay("ann", 2)
    assert second.id != first.id
    assert second.get(timeout=30) == "ann-2" and first.get(timeout=30) == "ann-1"
    assert sorted(e.key for e in runs(ledger)) == ["ann-1", "ann-2"]


def test_keys_debounce_apart(redis_server):
    ann, bob = debounced_per_user.delay("ann", 1), debounced_per_user.delay("bob", 1)
    assert ann.id != bob.id
    assert debounced_per_user.delay("ann", 2).id == ann.id


def test_no_worker_starts_old_arguments_after_a_newer_call_returned(worker, ledger):
    """Calls land around the moment the waiting task becomes due; whatever runs has its row's latest arguments."""
    worker("-c", "2")
    worker("-c", "2")
    returned: dict[str, list[int]] = {}
    rng = random.Random(21)
    for value in range(12):
        returned.setdefault(debounced_per_user.delay("race", value).id, []).append(value)
        # Debounce is 1 s, and a due task starts within a second (idle children look every second):
        # some calls land on a waiting row, some just after a worker started it.
        time.sleep(rng.uniform(0.8, 2.2))
    assert 3 <= len(returned) <= 11  # both cases happened
    assert wait_for(lambda: len(runs(ledger)) >= len(returned), timeout=30)
    time.sleep(1.5)
    ran = [int(e.key.split("-")[1]) for e in runs(ledger)]
    assert len(ran) == len(set(ran)) == len(returned)  # each row ran once
    assert sorted(ran) == sorted(values[-1] for values in returned.values())  # with its latest call's arguments
    for task_id, values in returned.items():
        assert TaskRecord.objects.get(pk=task_id).args == ["race", values[-1]]


def test_the_start_moves_in_redis_too(redis_server):
    first = debounced.delay(1)
    publisher.flush()
    broker = get_broker()
    scheduled = broker.queue_key("default", "scheduled")
    before = broker.client.zscore(scheduled, first.id)
    time.sleep(0.2)
    debounced.delay(2)
    row = TaskRecord.objects.get(pk=first.id)
    after = broker.client.zscore(scheduled, first.id)
    assert after == int(row.eta.timestamp() * 1000) and after - before >= 200
    # Due already (no worker took it yet): moved back from the ready set.
    ready = broker.queue_key("default", "ready")
    broker.client.zrem(scheduled, first.id)
    broker.client.zadd(ready, {first.id: 1})
    debounced.delay(3)
    assert broker.client.zscore(ready, first.id) is None and broker.client.zscore(scheduled, first.id)


def test_debounce_holds_with_redis_down_and_runs_the_latest_once_it_is_back(worker, ledger, redis_server):
    redis_server.stop()
    try:
        ids = {debounced_per_user.delay("offline", value).id for value in range(3)}
    finally:
        redis_server.start()
    [task_id] = ids
    worker("-c", "1")
    assert wait_for(lambda: runs(ledger), timeout=30)
    assert [e.key for e in runs(ledger)] == ["offline-2"]
    # The ledger is written by the task, before its outcome commits.
    assert wait_for(lambda: TaskRecord.objects.get(pk=task_id).state == "SUCCESS", timeout=10)


def test_a_rolled_back_call_leaves_the_waiting_arguments(redis_server):
    first = debounced.delay(1)
    eta = TaskRecord.objects.get(pk=first.id).eta
    with pytest.raises(RuntimeError), transaction.atomic():
        assert debounced.delay(2).id == first.id
        raise RuntimeError
    row = TaskRecord.objects.get(pk=first.id)
    assert (row.args, row.eta) == ([1], eta)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"countdown": 10}, "so a call cannot pass countdown or eta"),
        ({"unique_for": 10}, "is debounced: a call cannot pass unique_for"),
    ],
)
def test_a_debounced_call_refuses_its_own_start_or_window(redis_server, options, message):
    with pytest.raises(InvalidCall, match=message):
        debounced.apply_async((1,), **options)
    assert not TaskRecord.objects.exists()


SQLITE_TRIGGER = """CREATE TRIGGER debounce_refuse BEFORE UPDATE ON djtasks_task
    WHEN NEW.args LIKE '%refuse-me%' BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"""
POSTGRES_TRIGGERS = [
    """CREATE FUNCTION debounce_refuse() RETURNS trigger AS $$ BEGIN
         IF NEW.args::text LIKE '%refuse-me%' THEN
           RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'data_exception';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER debounce_refuse BEFORE UPDATE ON djtasks_task FOR EACH ROW EXECUTE FUNCTION debounce_refuse()",
]


@pytest.fixture
def refusing_database() -> Iterator[None]:
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for statement in POSTGRES_TRIGGERS if postgres else [SQLITE_TRIGGER]:
            cursor.execute(statement)
    yield
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("DROP TRIGGER debounce_refuse ON djtasks_task")
            cursor.execute("DROP FUNCTION debounce_refuse()")
        else:
            cursor.execute("DROP TRIGGER debounce_refuse")


def test_a_replacement_the_database_refuses_raises_and_changes_nothing(redis_server, refusing_database):
    first = debounced.delay("kept")
    with transaction.atomic():
        with pytest.raises(DatabaseError, match="refused by a test trigger"):
            debounced.delay("refuse-me")
        assert debounced.delay("next").id == first.id  # the caller's transaction is still usable
    assert TaskRecord.objects.get(pk=first.id).args == ["next"]


def test_a_worker_that_takes_a_debounced_row_early_puts_it_back(worker, ledger):
    """Redis says it is due (its entry was not moved): the row's later start wins."""
    worker("-c", "1")
    first = debounced.delay("early")
    publisher.flush()
    broker = get_broker()
    broker.client.zadd(broker.queue_key("default", "scheduled"), {first.id: 0})  # due since 1970
    called = time.time()
    broker.client.lpush(broker.wake_key("default"), "1")
    assert wait_for(lambda: runs(ledger), timeout=30)
    [run] = runs(ledger)
    assert run.key == "debounced-early" and run.at >= called + 4.5  # its start, less the start check's 0.5 s
