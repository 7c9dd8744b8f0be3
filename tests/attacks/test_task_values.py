"""Tasks that return or raise anything end in one final state, on their first and only run.

One live worker (one child) serves the whole module on the suite's database. Each task writes a
ledger line when it runs; after each batch the test checks that every task is final with one
attempt and one run, that the child that ran it is the same process, and that the worker answers
ping. Values come from recipes (tests/support/hostile.py) so that anything can reach the task.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from djtasks import control
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker
from tests.conftest import point_djtasks_at
from tests.support import hostile, strategies
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True)]
FINAL = ("SUCCESS", "FAILURE", "REVOKED")
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("DJTASKS_ATTACK_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Live:
    process: WorkerProcess
    ledger: Path

    @property
    def worker_id(self) -> str:
        return self.process.name

    def runs(self) -> Counter[str]:
        return Counter(line.split()[1] for line in self.ledger.read_text().splitlines() if line.startswith("start "))


@pytest.fixture
def clean_redis() -> Iterator[None]:
    """The module's worker keeps its Redis for the whole module (conftest's would flush it per test)."""
    yield


@pytest.fixture(scope="module")
def live(django_db_setup, redis_server, tmp_path_factory) -> Iterator[Live]:
    point_djtasks_at(redis_server.url)
    redis_server.client().flushall()
    folder = tmp_path_factory.mktemp("task-values")
    ledger = folder / "ledger.txt"
    ledger.touch()
    process = WorkerProcess(redis_server.url, folder, "-c", "1", env={"DJTASKS_LEDGER": str(ledger)}).start()
    yield Live(process, ledger)
    process.kill()


@pytest.fixture
def child(live: Live) -> Iterator[Live]:
    """The live worker, checked after the test: same single child, answering ping."""
    assert wait_for(lambda: len(live.process.children()) == 1, timeout=30), live.process.log()[-3000:]
    before = live.process.children()
    yield live
    assert live.process.children() == before, "the child was replaced:\n" + live.process.log()[-3000:]
    assert_answers_ping(live)


def assert_answers_ping(live: Live) -> None:
    assert live.process.process is not None and live.process.process.poll() is None
    assert wait_for(lambda: live.worker_id in control.workers(), timeout=30)
    [reply] = control.ping(destination=[live.worker_id], timeout=10)
    assert reply.ok and reply.data == "pong", reply


def key() -> str:
    return uuid.uuid4().hex[:12]


def run(live: Live, calls: list[tuple[object, tuple]]) -> list[TaskRecord]:
    """Enqueue the calls in one transaction (so the child claims them as one batch); wait until all are final."""
    with transaction.atomic():
        ids = [task.apply_async(args).id for task, args in calls]
    done = wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, state__in=FINAL).count() == len(ids), timeout=60)
    rows = TaskRecord.objects.in_bulk(ids)
    assert done, {i: rows[i].state for i in ids} | {"log": live.process.log()[-3000:]}
    return [rows[i] for i in ids]


def assert_ran_once(live: Live, row: TaskRecord, key: str) -> None:
    """One run in the ledger, one error entry if it failed. (attempts also counts starts handed back
    unrun, when a slow task sends the rest of its batch back to the queue.)"""
    assert live.runs()[key] == 1, f"{key} ran {live.runs()[key]} times"
    assert len(row.errors) == (row.state == "FAILURE"), (row.errors, row.exception_message[:300])


values = strategies.recipes  # recipes of hostile values (tests/support/hostile.py)


# Return values -------------------------------------------------------------------------------


def check_returned(live: Live, row: TaskRecord, k: str, recipe: dict) -> None:
    value = hostile.build(recipe)
    assert_ran_once(live, row, k)
    if hostile.storable(value):
        assert row.state == "SUCCESS", (row.exception_type, row.exception_message[:500])
        assert hostile.same(row.result, value), (row.result, value)
    else:
        assert row.state == "FAILURE", (row.result, value)
        assert row.exception_type == "builtins.TypeError"
        assert "return value of tests.testapp.tasks.give_back" in row.exception_message
        assert row.result is None


@HYPOTHESIS
@given(recipes=st.lists(values, min_size=1, max_size=4))
@example(recipes=[{"s": [0]}])
@example(recipes=[{"s": [97, 0xD800, 98]}, {"i": "1"}])
@example(recipes=[{"d": [[{"i": "1"}, {"s": [97]}], [{"s": [49]}, {"s": [98]}]]}])
@example(recipes=[{"f": "nan"}, {"i": str(2**64 + 1)}, {"f": "1.2345e+20"}])
@example(recipes=[{"deep": 99}, {"deep": 101}, {"big": [500_000, 0x1F600]}])
@example(recipes=[{"o": "evil_dict"}, {"o": "generator"}, {"s": [0x1F600]}])
def test_whatever_a_task_returns_it_ends_once_success_when_storable_else_failure(child, recipes):
    keyed = [(key(), recipe) for recipe in recipes]
    rows = run(child, [(tasks.give_back, (k, recipe)) for k, recipe in keyed])
    for row, (k, recipe) in zip(rows, keyed, strict=True):
        check_returned(child, row, k, recipe)


def test_a_return_value_with_a_nul_character_ends_failure_on_its_only_run(child):
    k = key()
    [row] = run(child, [(tasks.give_back, (k, {"s": [97, 0, 98]}))])
    assert row.state == "FAILURE" and "NUL" in row.exception_message
    assert_ran_once(child, row, k)


# Exceptions ----------------------------------------------------------------------------------

messages = st.one_of(values, st.sampled_from([{"big": [200_000, 120]}, {"s": [0, 10, 0xDC80]}]))


def check_raised(live: Live, row: TaskRecord, k: str, kind: str, recipe: dict, function: str = "raise_back") -> None:
    assert_ran_once(live, row, k)
    assert row.state == "FAILURE", (row.state, row.result)
    assert row.exception_type == hostile.expected_type(kind)
    assert row.traceback.startswith("Traceback (most recent call last)"), row.traceback[:300]
    assert function in row.traceback
    assert row.errors and row.errors[-1]["exception_type"] == row.exception_type
    try:
        text = str(hostile.exception(kind, hostile.build(recipe)))
    except BaseException:  # noqa: BLE001 - the classes whose str() fails
        text = None
    if text is None:
        assert "str()" in row.exception_message, row.exception_message
    elif hostile.has_objects(recipe):  # its str() names addresses of the worker's own objects
        assert row.exception_message
    elif hostile.plain_text(text):
        assert row.exception_message == text
    else:
        assert row.exception_message and "\x00" not in row.exception_message


@HYPOTHESIS
@given(raised=st.lists(st.tuples(st.sampled_from(sorted(hostile.EXCEPTIONS)), messages), min_size=1, max_size=4))
def test_whatever_a_task_raises_it_ends_failure_once_with_class_message_and_traceback(child, raised):
    keyed = [(key(), kind, recipe) for kind, recipe in raised]
    rows = run(child, [(tasks.raise_back, (k, kind, recipe)) for k, kind, recipe in keyed])
    for row, (k, kind, recipe) in zip(rows, keyed, strict=True):
        check_raised(child, row, k, kind, recipe)


@pytest.mark.parametrize("kind", sorted(hostile.EXCEPTIONS))
def test_each_kind_of_exception_ends_failure_once(child, kind):
    k = key()
    [row] = run(child, [(tasks.raise_back, (k, kind, {"s": [98, 111, 111, 109]}))])
    check_raised(child, row, k, kind, {"s": [98, 111, 111, 109]})


@pytest.mark.parametrize("kind", ["KeyboardInterrupt", "SystemExit", "GeneratorExit", "CustomBase", "StrRaises"])
def test_a_coroutine_task_raising_anything_ends_failure_once(child, kind):
    k = key()
    [row] = run(child, [(tasks.async_raise, (k, kind))])
    check_raised(child, row, k, kind, {"s": [ord(c) for c in "raised in a coroutine"]}, function="async_raise")


@pytest.mark.parametrize("kind", ["KeyboardInterrupt", "CustomBase", "ValueError"])
def test_an_exception_raised_while_handling_the_soft_time_limit_is_recorded(child, kind):
    k = key()
    [row] = run(child, [(tasks.raise_after_soft_limit, (k, kind))])
    message = [ord(c) for c in "raised while handling the soft time limit"]
    check_raised(child, row, k, kind, {"s": message}, function="raise_after_soft_limit")


def test_a_coroutine_past_its_soft_time_limit_fails_once_and_does_not_run_on(child):
    k = key()
    [row] = run(child, [(tasks.async_sleep_past_soft_limit, (k,))])
    assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.SoftTimeLimitExceeded"
    assert_ran_once(child, row, k)
    # The coroutine slept 3 s: had it kept running in the child after its FAILURE, it would end now.
    assert not wait_for(lambda: f"end {k} " in child.ledger.read_text(), timeout=4)
    assert tasks.add.delay(1, 1).get(timeout=20) == 2


@pytest.mark.parametrize("how", ["exit", "sigkill", "segfault"])
def test_a_task_that_kills_its_own_child_is_the_one_that_runs_again(live, how):
    k = key()
    [row] = run(live, [(tasks.kill_self_once, (k, how))])
    assert row.state == "SUCCESS" and row.result == "survived"
    assert row.attempts == 2 and live.runs()[k] == 2
    assert_answers_ping(live)


# Refused writes ------------------------------------------------------------------------------

# A trigger stands for any refusal the worker cannot foresee (a constraint, a JSON the column
# refuses): it refuses to store a result holding "refuse-me", or to start a row whose arguments
# hold "refuse-start". SQLite's RAISE(ABORT) is an IntegrityError; PostgreSQL's is a DataError.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER attack_refuse_result BEFORE UPDATE ON djtasks_task
       WHEN NEW.result LIKE '%refuse-me%' BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END""",
    """CREATE TRIGGER attack_refuse_start BEFORE UPDATE ON djtasks_task
       WHEN OLD.args LIKE '%refuse-start%' AND NEW.lease_expires_at IS NOT NULL
       BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END""",
]
POSTGRES_TRIGGERS = [
    """CREATE FUNCTION attack_refuse() RETURNS trigger AS $$ BEGIN
         IF NEW.result::text LIKE '%refuse-me%'
            OR (OLD.args::text LIKE '%refuse-start%' AND NEW.lease_expires_at IS NOT NULL) THEN
           RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'data_exception';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER attack_refuse BEFORE UPDATE ON djtasks_task FOR EACH ROW EXECUTE FUNCTION attack_refuse()""",
]


@pytest.fixture
def refusing_database() -> Iterator[None]:
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
            cursor.execute(statement)
    yield
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("DROP TRIGGER attack_refuse ON djtasks_task")
            cursor.execute("DROP FUNCTION attack_refuse()")
        else:
            cursor.execute("DROP TRIGGER attack_refuse_result")
            cursor.execute("DROP TRIGGER attack_refuse_start")


def test_an_outcome_the_database_refuses_ends_failure_once_and_spares_its_batch(child, refusing_database):
    keyed = [key() for _ in range(5)]
    values = ["ok-0", "ok-1", "refuse-me", "ok-3", "ok-4"]
    rows = run(child, [(tasks.echo, (k, v)) for k, v in zip(keyed, values, strict=True)])
    for row, k, value in zip(rows, keyed, values, strict=True):
        assert_ran_once(child, row, k)
        if value == "refuse-me":
            assert row.state == "FAILURE" and row.result is None
            assert row.exception_type == "djtasks.exceptions.WriteRefused"
            assert "refused by a test trigger" in row.exception_message
        else:
            assert (row.state, row.result) == ("SUCCESS", value)


def test_a_start_the_database_refuses_is_set_aside_once_and_spares_its_batch(child, refusing_database):
    keyed = [key() for _ in range(4)]
    values = ["ok-0", "refuse-start", "ok-2", "ok-3"]
    rows = run(child, [(tasks.echo, (k, v)) for k, v in zip(keyed, values, strict=True)])
    for row, k, value in zip(rows, keyed, values, strict=True):
        if value == "refuse-start":
            assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.WriteRefused"
            assert "refused by a test trigger" in row.exception_message
            assert child.runs()[k] == 0
            letter = DeadLetter.objects.get(task_id=row.id)
            assert "refused" in letter.reason and letter.task_name == row.task_name
            assert letter.raw, "the dead letter keeps the message it set aside"
        else:
            assert_ran_once(child, row, k)
            assert (row.state, row.result) == ("SUCCESS", value)


def push_raw(task_id: str, envelope: str = "2:0", queue: str = "default") -> None:
    broker = get_broker()
    broker.client.hset(broker.queue_key(queue, "messages"), task_id, envelope)
    broker.client.zadd(broker.queue_key(queue, "ready"), {task_id: 0})
    broker.client.lpush(broker.wake_key(queue), "1")


def test_a_queued_id_the_database_refuses_is_dead_lettered_not_handed_back_forever(child):
    push_raw("nul\x00id")
    assert wait_for(lambda: DeadLetter.objects.filter(task_id__startswith="nul").exists(), timeout=30), (
        child.process.log()[-3000:]
    )
    # The dead letter is committed first, then the message leaves Redis: wait for that too (a read
    # straight after the letter appeared found it still there, at load).
    assert wait_for(lambda: get_broker().known(["nul\x00id"]) == [False], timeout=10)
    assert tasks.add.delay(2, 2).get(timeout=20) == 4


# Logs ----------------------------------------------------------------------------------------


def test_a_newline_in_a_task_id_cannot_forge_a_worker_log_line(child):
    forged = "dup\n[2026-01-01 00:00:00 ERROR 1] FORGED line\r\x1b[2Kcleared"
    TaskRecord.objects.create(id=forged, task_name=tasks.add.registered_name, state="SUCCESS", args=[1, 1])
    push_raw(forged)
    assert wait_for(lambda: "FORGED" in child.process.log(), timeout=30)
    lines = child.process.log().splitlines()
    assert not [line for line in lines if line.startswith("[2026-01-01") or "\x1b" in line or "\r" in line]
    assert any(re.search(r"dup\\n\[2026-01-01 .*FORGED line\\r\\x1b\[2Kcleared", line) for line in lines)


def test_a_task_s_exception_message_cannot_forge_a_worker_log_line(child):
    """Django's own django.tasks receiver logs a failed task's line with its traceback: escaped too."""
    forged = "no\n[2026-01-02 00:00:00 ERROR 1] FORGED by an exception\r\x1b[2Kcleared"
    result = tasks.fail.delay(forged)
    with pytest.raises(ValueError):
        result.get(timeout=30)
    assert wait_for(lambda: "FORGED by an exception" in child.process.log(), timeout=30)
    lines = child.process.log().splitlines()
    assert not [line for line in lines if line.startswith("[2026-01-02") or "\x1b" in line or "\r" in line]
    assert any(re.search(r"no\\n\[2026-01-02 .*FORGED by an exception\\r\\x1b\[2Kcleared", line) for line in lines)


def test_recipes_are_plain_json():
    """The recipes themselves must reach the task unchanged, whatever value they describe."""
    recipe = {"d": [[{"s": [0, 0xD800]}, {"o": "set"}]]}
    assert json.loads(json.dumps(recipe)) == recipe


# Figures for the README's fault table --------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "call"),
    [
        ("task returns a NUL character", lambda k: (tasks.give_back, (k, {"s": [97, 0]}))),
        ("task raises KeyboardInterrupt", lambda k: (tasks.raise_back, (k, "KeyboardInterrupt", {"s": [120]}))),
        ("task raises SystemExit", lambda k: (tasks.raise_back, (k, "SystemExit", {"i": "3"}))),
        ("task raises a custom BaseException", lambda k: (tasks.raise_back, (k, "CustomBase", {"s": [120]}))),
    ],
)
def test_hostile_tasks_among_valid_ones_lose_nothing_and_run_nothing_twice(child, fault_report, fault, call):
    """20 hostile tasks among 40 valid ones, in batches: every one ends on its first run."""
    keyed = [(key(), i % 3 == 0) for i in range(60)]
    began = time.monotonic()
    with transaction.atomic():
        ids = [
            task.apply_async(args).id for task, args in (call(k) if bad else (tasks.echo, (k, k)) for k, bad in keyed)
        ]
    wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, state__in=FINAL).count() == len(ids), timeout=90)
    elapsed = time.monotonic() - began
    found = TaskRecord.objects.in_bulk(ids)
    rows = [found[i] for i in ids]
    runs = child.runs()
    lost = [row.id for row in rows if row.state not in FINAL]
    twice = [k for k, _ in keyed if runs[k] > 1]
    failed = sum(row.state == "FAILURE" for row in rows)
    fault_report(
        fault=f"{fault} ({connection.vendor})",
        enqueued=len(rows),
        lost=len(lost),
        ran_twice=len(twice),
        recovery_s=None,
        notes=f"{failed} FAILURE, {len(rows) - failed} SUCCESS, {sum(runs[k] for k, _ in keyed)} runs, {elapsed:.1f} s",
    )
    for row, (k, hostile_one) in zip(rows, keyed, strict=True):
        assert_ran_once(child, row, k)
        assert (row.state == "FAILURE") if hostile_one else (row.state, row.result) == ("SUCCESS", k)
    assert not lost and not twice
