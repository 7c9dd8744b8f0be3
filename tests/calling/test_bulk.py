"""djtasks.bulk(): one transaction, rows in multi-row INSERTs, one publish; nothing more lost than atomic() loses."""

import contextlib
import contextvars
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

import djtasks
from djtasks import AsyncResult
from djtasks.calling import publisher
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import InvalidCall
from djtasks.models import TaskRecord
from djtasks.record import inserts as record_inserts
from djtasks.record import rows
from djtasks.transport.broker import Broker, get_broker
from djtasks.worker.maintenance import sweep
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]
ROOT = Path(__file__).resolve().parents[2]


def inserts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]


def test_a_bulk_block_writes_its_rows_in_multi_row_inserts_and_publishes_once():
    count = record_inserts.MAX_ROWS_PER_INSERT + 5
    postgres = connection.vendor == "postgresql"
    cursor_class = type(connection.cursor().cursor)
    with (
        mock.patch.object(Broker, "publish_nowait", autospec=True, side_effect=Broker.publish_nowait) as publish,
        mock.patch.object(cursor_class, "copy", autospec=True, side_effect=cursor_class.copy)
        if postgres
        else contextlib.nullcontext() as copies,
    ):
        with CaptureQueriesContext(connection) as queries, djtasks.bulk():
            results = [add.delay(i, 1) for i in range(count)]
            assert publish.call_count == 0
    if postgres:  # one COPY, which Django's query log does not show
        assert (copies.call_count, inserts(queries)) == (1, [])
    else:  # 64 rows, then 4, then 1 (fewer where a statement's values are limited)
        assert 3 <= len(inserts(queries)) <= count
    assert publish.call_count == 1
    publisher.flush()
    assert get_broker().known([r.id for r in results]) == [True] * count
    assert sorted(TaskRecord.objects.values_list("args", flat=True)) == sorted([i, 1] for i in range(count))


def test_a_rolled_back_bulk_block_writes_and_publishes_nothing():
    with pytest.raises(RuntimeError), djtasks.bulk():
        results = [add.delay(i, 1) for i in range(50)]
        TaskRecord.objects.count()  # the rows are written by now: a rollback must still drop them
        more = [add.delay(i, 2) for i in range(50)]  # still pending when the block fails
        raise RuntimeError
    publisher.flush()
    ids = [r.id for r in results + more]
    assert not TaskRecord.objects.exists()
    assert get_broker().known(ids) == [False] * len(ids)


def test_reads_in_the_block_see_the_rows_of_its_calls():
    with djtasks.bulk():
        first = add.delay(1, 1)
        assert AsyncResult(first.id).state == "PENDING"
        assert TaskRecord.objects.filter(pk=first.id).exists()
        second = add.delay(2, 2)
        with connection.cursor() as cursor:  # raw SQL too: every statement writes the pending rows first
            cursor.execute("SELECT COUNT(*) FROM djtasks_task")
            assert cursor.fetchone()[0] == 2
        assert get_broker().known([first.id, second.id]) == [False, False]  # published only after commit
    publisher.flush()
    assert get_broker().known([first.id, second.id]) == [True, True]


def test_a_rolled_back_savepoint_in_a_bulk_block_drops_only_its_own_calls():
    with djtasks.bulk():
        kept = add.delay(1, 1)
        with pytest.raises(RuntimeError), transaction.atomic():
            dropped = add.delay(2, 2)
            raise RuntimeError
        also_kept = add.delay(3, 3)
    publisher.flush()
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {kept.id, also_kept.id}
    assert get_broker().known([kept.id, dropped.id, also_kept.id]) == [True, False, True]


def test_a_row_the_database_refuses_fails_the_block_and_loses_the_rest_with_it():
    with pytest.raises(IntegrityError), djtasks.bulk():
        add.apply_async((1, 1), task_id="same-id")
        add.apply_async((2, 2), task_id="same-id")  # refused when the pending rows are written
        add.delay(3, 3)
    publisher.flush()
    assert not TaskRecord.objects.exists()
    assert get_broker().known(["same-id"]) == [False]


def test_an_unstorable_argument_fails_its_own_call_at_once():
    with djtasks.bulk():
        kept = add.delay(1, 1)
        with pytest.raises(InvalidCall):
            add.delay(object(), 1)
    assert list(TaskRecord.objects.values_list("pk", flat=True)) == [kept.id]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(["call", "read", "savepoint-ok", "savepoint-fail"]), max_size=12))
def test_any_mix_of_calls_reads_and_savepoints_keeps_exactly_what_atomic_would(steps):
    TaskRecord.objects.all().delete()
    kept = []
    with djtasks.bulk():
        for n, step in enumerate(steps):
            if step == "call":
                kept.append(add.delay(n, 0).id)
            elif step == "read":
                assert set(TaskRecord.objects.values_list("pk", flat=True)) == set(kept)
            else:
                try:
                    with transaction.atomic():
                        inner = add.delay(n, 1).id
                        if step == "savepoint-fail":
                            raise RuntimeError
                    kept.append(inner)
                except RuntimeError:
                    pass
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == set(kept)


CRASH = """
import os, signal, sys
import django
django.setup()
from django.db import transaction
import djtasks
from tests.testapp.tasks import add
with djtasks.bulk():
    if sys.argv[1] == "after-commit":  # runs before the publish's own on_commit hook
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    for i in range(300):
        print(add.delay(i, 1).id, flush=True)
    if sys.argv[1] == "in-block":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def crashing_enqueuer(redis_url: str, when: str) -> list[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "DJTASKS_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASH, when], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr[-3000:]
    return done.stdout.split()


def test_a_process_killed_inside_a_bulk_block_leaves_neither_rows_nor_messages(redis_server):
    ids = crashing_enqueuer(redis_server.url, "in-block")
    assert len(ids) == 300
    assert not TaskRecord.objects.exists()
    assert get_broker().known(ids) == [False] * 300


def test_a_process_killed_between_commit_and_publish_loses_nothing(redis_server):
    ids = crashing_enqueuer(redis_server.url, "after-commit")
    assert TaskRecord.objects.filter(pk__in=ids).count() == 300
    assert get_broker().known(ids) == [False] * 300
    TaskRecord.objects.update(enqueued_at=timezone.now() - timedelta(seconds=5))  # past the sweep's grace
    assert sweep(get_broker(), get_settings(), full=False) == 300
    assert get_broker().known(ids) == [True] * 300


sqlite_only = pytest.mark.skipif("connection.vendor != 'sqlite'")


@sqlite_only
def test_an_execute_wrapper_of_the_project_still_sees_the_bulk_inserts():
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql.split(" ", 1)[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper), djtasks.bulk():
        ids = [add.delay(i, 1).id for i in range(1200)]
    full = record_inserts.MAX_ROWS_PER_INSERT  # 1200 rows: 18 full statements, then 32 and 16 rows
    assert seen.count("INSERT") == 1200 // full + bin(1200 % full).count("1")
    assert TaskRecord.objects.filter(pk__in=ids).count() == 1200


@sqlite_only
def test_bulk_blocks_of_every_size_reuse_a_few_statements_each_compiled_once():
    # SQLite compiles a statement in time proportional to its rows (about 8 µs a row) and caches
    # it by its text: a text per block size (1,000 rows then the rest) cost a compile per block.
    texts: set[str] = set()
    written = 0
    for size in [1, 2, 3, 5, 7, 12, 33, 63, 64, 65, 100, 127, 130, 200, 255, 333]:
        statements: list[str] = []

        def wrapper(execute, sql, params, many, context, statements=statements):
            statements += [sql] if sql.startswith("INSERT") else []
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper), djtasks.bulk():
            for i in range(size):
                add.delay(i, size)
        rows = [s.count("), (") + 1 for s in statements]
        assert sum(rows) == size and max(rows) <= record_inserts.MAX_ROWS_PER_INSERT
        assert rows == sorted(rows, reverse=True) and all(n & (n - 1) == 0 for n in rows)  # powers of two
        texts.update(statements)
        written += size
    assert len(texts) <= record_inserts.MAX_ROWS_PER_INSERT.bit_length()  # 64, 32, ... 1: seven texts
    assert TaskRecord.objects.count() == written


@sqlite_only
def test_bulk_inserts_nobody_would_see_skip_django_s_cursor_and_store_the_same_rows():
    cursor_class = type(connection.cursor().cursor)
    with mock.patch.object(cursor_class, "execute", autospec=True, side_effect=cursor_class.execute) as execute:
        with djtasks.bulk():
            ids = [add.delay(i, 1).id for i in range(1200)]
    assert not [c for c in execute.call_args_list if c.args[1].startswith("INSERT")]
    assert sorted(TaskRecord.objects.filter(pk__in=ids).values_list("args", flat=True)) == sorted(
        [i, 1] for i in range(1200)
    )


@sqlite_only
def test_plain_calls_in_a_block_bind_only_the_columns_that_differ_from_call_to_call():
    # SQLite binds each parameter: 35 a row cost about 3 µs more than the 5 a delay() without
    # options varies in (id, root_id, args, kwargs, enqueued_at); the other 30 are bound once a statement.
    bound: list[int] = []

    def wrapper(execute, sql, params, many, context):
        bound.extend([len(params)] if sql.startswith("INSERT") else [])
        return execute(sql, params, many, context)

    full = record_inserts.MAX_ROWS_PER_INSERT
    with connection.execute_wrapper(wrapper), djtasks.bulk():
        ids = [add.delay(i, i).id for i in range(full)]
    varying = len(rows.call_columns(connection))
    assert varying == 5 and bound == [full * varying + len(TaskRecord._meta.concrete_fields) - varying]
    stored = TaskRecord.objects.filter(pk__in=ids)
    assert sorted(stored.values_list("args", flat=True)) == sorted([i, i] for i in range(full))
    seen = {(r.root_id == r.id, r.state, r.queue, str(r.kwargs)) for r in stored}
    assert seen == {(True, "PENDING", "default", "{}")}


def test_a_bulk_block_reaches_redis_as_one_group_stored_a_thousand_ids_a_command_in_call_order(redis_server):
    # Redis ran HSETNX, ZADD and SET for every call of a block (3 commands a task, 12 µs of the
    # server's CPU on a 2-core machine), and redis-py packed four arguments a task: the block's
    # plain calls now reach the publish script as one group of ids, stored by the thousand.
    client = get_broker().client
    client.config_resetstat()
    with djtasks.bulk():
        ids = [add.delay(i, 1).id for i in range(2500)]
        ids.append(add.apply_async((0, 0), priority=0).id)  # calls with options, in their place
        later = add.apply_async((0, 0), countdown=60).id
        ids += [add.delay(i, 2).id for i in range(3)]
    publisher.flush()
    calls = {name[len("cmdstat_") :]: stats["calls"] for name, stats in client.info("commandstats").items()}
    # Groups of 1,000, 1,000, 501, 1 (the countdown: a lone id takes HSETNX) and 3: consecutive
    # messages alike share one.
    assert calls["evalsha"] == 1 and calls["hsetnx"] == 1
    assert calls["hmget"] == calls["hset"] == 4 and calls["zadd"] == 5 and calls.get("set", 0) <= 2
    ready = [m.decode() for m in client.zrange(get_broker().queue_key("default", "ready"), 0, -1)]
    assert ready == ids  # the arrival clock counts on in call order
    assert client.zscore(get_broker().queue_key("default", "scheduled"), later) is not None
    assert get_broker().known([*ids, later]) == [True] * 2505


def test_only_the_block_s_own_thread_takes_its_connection_for_the_calls_of_the_block():
    # The per-task plan takes the block's connection from a context variable instead of Django's
    # connections[alias]; a context copied to another thread (asgiref's sync_to_async does) must
    # not hand that thread this thread's connection.
    assert record_inserts.block_connection("default") is None
    with djtasks.bulk():
        assert record_inserts.block_connection("default") is connections["default"]
        assert record_inserts.block_connection("other") is None
        seen = []
        copied = contextvars.copy_context()
        thread = threading.Thread(
            target=copied.run, args=(lambda: seen.append(record_inserts.block_connection("default")),)
        )
        thread.start()
        thread.join()
        assert seen == [None]
    assert record_inserts.block_connection("default") is None
