"""apply_async's instance-free path (calling/direct.py): the same rows and messages, and every receiver still served."""

import contextlib
import gc
import itertools
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import signals as model_signals
from django.test import override_settings
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

import djtasks
from djtasks.calling import publisher, signals
from djtasks.calling.direct import unobserved
from djtasks.core.context import Current, activate, deactivate
from djtasks.models import TaskRecord
from djtasks.record import rows
from djtasks.transport.broker import get_broker
from tests.testapp.tasks import add, renamed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]


def in_bulk(bulk: bool) -> contextlib.AbstractContextManager[None]:
    return djtasks.bulk() if bulk else contextlib.nullcontext()


@pytest.mark.parametrize("bulk", [False, True])
def test_a_call_nothing_observes_builds_no_instance_and_writes_and_publishes_its_row(bulk):
    assert unobserved(add)
    with mock.patch.object(rows, "new_record", side_effect=AssertionError("an instance was built")):
        with in_bulk(bulk):
            results = [add.delay(i, 1) for i in range(3)]
    publisher.flush()
    ids = [r.id for r in results]
    assert sorted(TaskRecord.objects.filter(pk__in=ids).values_list("args", flat=True)) == [[0, 1], [1, 1], [2, 1]]
    assert get_broker().known(ids) == [True] * 3


def model_receiver(signal, seen):
    def receiver(sender, **kwargs):
        instance = kwargs.get("instance")
        seen.append(getattr(instance, "id", None) if instance is not None else kwargs.get("kwargs"))

    signal.connect(receiver, sender=TaskRecord, weak=False)
    return lambda: signal.disconnect(receiver, sender=TaskRecord)


def celery_receiver(signal, seen):
    def receiver(sender, **kwargs):
        seen.append(kwargs.get("headers", {}).get("id") or kwargs["body"][0])

    signal.connect(receiver, weak=False)
    return lambda: signal.disconnect(receiver)


RECEIVERS = {
    "pre_init": (model_signals.pre_init, model_receiver),
    "post_init": (model_signals.post_init, model_receiver),
    "pre_save": (model_signals.pre_save, model_receiver),
    "post_save": (model_signals.post_save, model_receiver),
    "before_task_publish": (signals.before_task_publish, celery_receiver),
    "after_task_publish": (signals.after_task_publish, celery_receiver),
}


@pytest.mark.parametrize("bulk", [False, True])
@pytest.mark.parametrize("name", sorted(RECEIVERS))
def test_every_receiver_of_a_new_row_still_gets_it(name, bulk):
    signal, connect = RECEIVERS[name]
    seen: list = []
    disconnect = connect(signal, seen)
    try:
        assert not unobserved(add)
        with in_bulk(bulk):
            result = add.delay(7, 8)
        publisher.flush()
    finally:
        disconnect()
    if name == "pre_init":  # TaskRecord(*values): nothing by keyword
        assert seen == [{}]
    elif name == "after_task_publish":  # the body: (args, kwargs, embed)
        assert seen == [[7, 8]]
    else:
        assert seen == [result.id]
    assert TaskRecord.objects.get(pk=result.id).args == [7, 8]
    assert get_broker().known([result.id]) == [True]
    assert unobserved(add)  # disconnected: the instance-free path again


def test_a_post_save_receiver_connected_for_any_sender_still_gets_the_row():
    seen: list = []

    def receiver(sender, instance, created, **kwargs):
        if sender is TaskRecord:
            seen.append((instance.id, created))

    model_signals.post_save.connect(receiver, weak=False)
    try:
        result = add.delay(1, 2)
    finally:
        model_signals.post_save.disconnect(receiver)
    assert seen == [(result.id, True)]


def test_a_weakly_connected_post_save_receiver_gets_rows_while_it_lives_and_not_after():
    seen: list = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.id)

    assert unobserved(add)  # the answer cached for post_save's receivers before the connect
    model_signals.post_save.connect(receiver, sender=TaskRecord)  # weak, Django's default
    first = add.delay(1, 1)
    del receiver
    gc.collect()
    second = add.delay(2, 2)
    assert seen == [first.id] and unobserved(add)
    assert TaskRecord.objects.filter(pk__in=[first.id, second.id]).count() == 2


texts = st.text(max_size=4).filter(lambda t: "\x00" not in t)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=5,
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
calls = st.fixed_dictionaries(
    {"args": st.tuples(json_values, json_values)},
    optional={
        "eta": moments,
        "expires": moments,
        "priority": st.integers(-100, 100),
        "queue": st.sampled_from(["default", "other", "q-1"]),
        "headers": st.dictionaries(texts.filter(bool), json_values, max_size=2),
        "ignore_result": st.booleans(),
        "link": st.just([add.s(1)]),
        "time_limit": st.integers(1, 100),
        "retries": st.integers(0, 5),
        "group_id": st.text("abc-0123", min_size=1, max_size=5),
    },
)
COMPARED = [f.attname for f in TaskRecord._meta.concrete_fields if f.attname not in {"id", "root_id", "enqueued_at"}]


def forced_instance_path() -> contextlib.AbstractContextManager[None]:
    """A pre_save receiver that does nothing: the call takes enqueue()'s instance path."""

    @contextlib.contextmanager
    def connected():
        def receiver(sender, **kwargs):
            pass

        model_signals.pre_save.connect(receiver, sender=TaskRecord, weak=False)
        try:
            yield
        finally:
            model_signals.pre_save.disconnect(receiver, sender=TaskRecord)

    return connected()


@settings(max_examples=40, deadline=None)
@given(calls, st.booleans())
def test_both_paths_store_the_same_row_and_publish_the_same_message(call, bulk):
    TaskRecord.objects.all().delete()
    args, options = call["args"], {k: v for k, v in call.items() if k != "args"}
    with in_bulk(bulk):
        direct = add.apply_async(args, **options)
        with forced_instance_path():
            built = add.apply_async(args, **options)
    publisher.flush()
    mine, theirs = TaskRecord.objects.get(pk=direct.id), TaskRecord.objects.get(pk=built.id)
    for name in COMPARED:
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.root_id == direct.id and theirs.root_id == built.id
    assert abs(mine.enqueued_at - theirs.enqueued_at) < timedelta(seconds=5)
    assert mine.enqueued_at <= timezone.now()
    queue = options.get("queue", "default")
    assert get_broker().known([direct.id, built.id], queue) == [True, True]


def stored_json(*ids: str) -> list[tuple[str, str]]:
    """The args and kwargs columns as the database holds them (SQLite: the very text written)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, args, kwargs FROM djtasks_task WHERE id IN (%s, %s)", ids)
        found = {row[0]: (str(row[1]), str(row[2])) for row in cursor.fetchall()}
    return [found[i] for i in ids]


@settings(max_examples=30, deadline=None)
@given(json_values, json_values, st.booleans(), st.booleans())
def test_a_call_without_options_stores_what_the_instance_path_stores_json_text_included(x, y, by_name, bulk):
    # delay() without options starts from a row made once per task (direct._Plan) and encodes its
    # arguments with core/plainjson.py: the same row, to the JSON text, as enqueue() builds.
    TaskRecord.objects.all().delete()
    args, kwargs = ((), {"x": x, "y": y}) if by_name else ((x, y), {})
    with in_bulk(bulk):
        planned, other = add.delay(*args, **kwargs), renamed.delay()
        with forced_instance_path():
            built, other_built = add.delay(*args, **kwargs), renamed.delay()
    publisher.flush()
    for mine, theirs in ((planned.id, built.id), (other.id, other_built.id)):
        first, second = TaskRecord.objects.get(pk=mine), TaskRecord.objects.get(pk=theirs)
        assert [getattr(first, n) for n in COMPARED] == [getattr(second, n) for n in COMPARED]
        assert (first.root_id, second.root_id) == (mine, theirs)
    for mine, theirs in ((planned.id, built.id), (other.id, other_built.id)):
        assert stored_json(mine, theirs)[0] == stored_json(mine, theirs)[1]
    assert get_broker().known([planned.id, built.id]) == [True, True]
    assert get_broker().known([other.id, other_built.id], "other") == [True, True]


def test_a_call_without_options_follows_the_settings_in_force_and_the_running_task():
    base = django_settings.DJTASKS
    with override_settings(DJTASKS={**base, "ROUTES": {add.registered_name: "first"}}):
        assert TaskRecord.objects.get(pk=add.delay(1, 1).id).queue == "first"
    assert TaskRecord.objects.get(pk=add.delay(1, 1).id).queue == "default"
    running = Current(id="parent-1", token="t", task_name="x", attempt=1, worker_id="w", queue="default", db="default")
    token = activate(running)
    try:
        child = TaskRecord.objects.get(pk=add.delay(2, 2).id)
    finally:
        deactivate(token)
    assert (child.parent_id, child.root_id) == ("parent-1", "parent-1")
    assert TaskRecord.objects.get(pk=add.delay(3, 3).id).parent_id == ""


# Printable characters that mean something to SQL literals, to psycopg's placeholders (%s,
# %(name)s, %%) or to Python's format strings: a task's name and queue are constants of its row,
# inlined as literals in PostgreSQL's statement of a call without options (inserts.Shape.statement).
hostile_text = st.text(alphabet="%s()'\"\\{}$;-E é😀", min_size=1, max_size=12).filter(lambda t: t == t.strip())
_declared = itertools.count()


def hostile_task(name: str, queue: str):
    def body(x):
        return x

    body.__qualname__ = "body"  # module level in the registry's eyes
    return djtasks.task(name=f"{name}{next(_declared)}", queue=queue)(body)


@settings(max_examples=40, deadline=None)
@given(hostile_text, hostile_text, json_values, st.booleans())
def test_a_call_without_options_stores_its_task_name_and_queue_however_they_quote(name, queue, x, bulk):
    TaskRecord.objects.all().delete()
    declared = hostile_task(name, queue)
    statements: list[tuple[str, int]] = []

    def seen(execute, sql, params, many, context):
        if sql.startswith("INSERT"):
            statements.append((sql, len(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(seen), in_bulk(bulk):
        planned = declared.delay(x)
        with forced_instance_path():
            built = declared.delay(x)
    publisher.flush()
    mine, theirs = TaskRecord.objects.get(pk=planned.id), TaskRecord.objects.get(pk=built.id)
    assert (mine.task_name, mine.queue) == (declared.registered_name, declared.queue_name)
    assert [getattr(mine, n) for n in COMPARED] == [getattr(theirs, n) for n in COMPARED]
    assert get_broker().known([planned.id, built.id], declared.queue_name) == [True, True]
    if connection.vendor == "postgresql" and not bulk:
        # The planned call bound only its own columns; the constants went as literals.
        assert statements[0][1] == len(rows.call_columns(connection)) < statements[1][1]


def test_a_plain_call_is_seen_by_execute_wrappers_and_the_query_log_and_reaches_the_database():
    # On SQLite a call nothing watches is written on the sqlite3 cursor itself (inserts.insert_row).
    from django.test.utils import CaptureQueriesContext

    sql: list[str] = []

    def wrapper(execute, statement, params, many, context):
        sql.append(statement)
        return execute(statement, params, many, context)

    with connection.execute_wrapper(wrapper):
        watched = add.delay(1, 2)
    with CaptureQueriesContext(connection) as logged:
        logged_call = add.delay(3, 4)
    unwatched = add.delay(5, 6)
    assert [s for s in sql if s.startswith("INSERT")] and [q for q in logged if q["sql"].startswith("INSERT")]
    publisher.flush()
    ids = [watched.id, logged_call.id, unwatched.id]
    stored = dict(TaskRecord.objects.filter(pk__in=ids).values_list("id", "args"))
    assert stored == {watched.id: [1, 2], logged_call.id: [3, 4], unwatched.id: [5, 6]}
