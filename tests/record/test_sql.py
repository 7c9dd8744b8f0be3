"""The hot-path statements write and read exactly what the ORM would."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_zone

import pytest
from django.db import connection, connections, transaction
from django.db.models import DateTimeField
from django.db.models.signals import post_init, pre_init
from django.utils import timezone
from hypothesis import example, given, settings
from hypothesis import strategies as st

from djtasks.core.states import State
from djtasks.models import TaskRecord
from djtasks.record import many as batched
from djtasks.record import rows, sql
from djtasks.states import RUNNABLE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]


def orm_params(record: TaskRecord) -> list:
    return [f.get_db_prep_save(f.pre_save(record, True), connection) for f in TaskRecord._meta.concrete_fields]


def comparable(values: list) -> list:
    # PostgreSQL's JSON adapter objects compare by identity: compare what they wrap.
    return [getattr(value, "obj", value) for value in values]


@pytest.mark.parametrize(
    "values",
    [
        {"id": "a", "task_name": "t"},
        {
            "id": "b",
            "task_name": "t",
            "args": [1, "x", None],
            "kwargs": {"k": [1]},
            "priority": -5,
            "eta": timezone.now() + timedelta(seconds=5),
            "ignore_result": True,
            "headers": {"h": 1},
            "canvas": {"link": [{"task": "x"}]},
            "result": {"r": 1},
            "errors": [{"e": 1}],
            "progress": 0.5,
        },
        {"id": "c", "task_name": "t", "priority": True, "retries": 3, "queue": "q", "result": None},
    ],
)
def test_insert_params_equal_what_the_orm_would_send(values):
    values = {**values, "enqueued_at": timezone.now()}  # the default is the time of the call
    assert comparable(rows.insert_params(rows.new_record(**values), connection)) == comparable(
        orm_params(TaskRecord(**values))
    )


def same_instance(built: TaskRecord, orm: TaskRecord) -> None:
    for field in TaskRecord._meta.concrete_fields:
        mine, theirs = getattr(built, field.attname), getattr(orm, field.attname)
        assert mine == theirs and type(mine) is type(theirs), field.name
    assert (built._state.adding, built._state.db) == (orm._state.adding, orm._state.db) == (True, None)
    assert built.publish_retry is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
zones = st.sampled_from([UTC, fixed_zone(timedelta(hours=5, minutes=30)), fixed_zone(timedelta(hours=-8))])
times = st.datetimes(timezones=zones, allow_imaginary=False)
row_values = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=8), "task_name": st.text(max_size=8)},
    optional={
        "queue": st.text(max_size=5),
        "priority": st.integers(-100, 100) | st.booleans(),
        "state": st.sampled_from(list(State)) | st.sampled_from([str(s) for s in State]),
        "args": st.lists(json_values, max_size=3),
        "kwargs": st.dictionaries(st.text(max_size=3), json_values, max_size=3),
        "result": json_values,
        "headers": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
        "canvas": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
        "options": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
        "errors": st.lists(json_values, max_size=2),
        "enqueued_at": times,
        "eta": st.none() | times,
        "expires_at": st.none() | times,
        "retries": st.integers(0, 2**31 - 1),
        "ignore_result": st.booleans(),
        "parent_id": st.text(max_size=5),
        "unique_lock": st.none() | st.text(max_size=5),
        "keys": st.none() | json_values,
    },
)


def in_zone(zone: str | None) -> None:
    """Make the connection's own time zone (DATABASES' TIME_ZONE) zone, reconnecting."""
    wrapper = connections["default"]  # not the proxy: its cached properties live on the wrapper
    wrapper.close()
    wrapper.settings_dict["TIME_ZONE"] = zone
    for cached in ("timezone", "timezone_name"):
        wrapper.__dict__.pop(cached, None)


@settings(max_examples=60, deadline=None)
@given(row_values, st.sampled_from([None, "Asia/Tokyo"]))
def test_new_records_and_their_insert_params_are_what_the_orm_builds_and_sends(values, zone):
    # The fast paths (defaults computed once, __dict__ filled, plain values and UTC times passed
    # through) against TaskRecord(**values) and get_db_prep_save(pre_save()), in the database's
    # default zone (UTC) and in another one (where SQLite's text must be converted).
    in_zone(zone)
    try:
        built, orm = rows.new_record(**values), TaskRecord(**values)
        if "enqueued_at" not in values:  # the default is the time of each call
            built.enqueued_at = orm.enqueued_at
        same_instance(built, orm)
        assert comparable(rows.insert_params(built, connection)) == comparable(orm_params(orm))
    finally:
        in_zone(None)


def copy_text(values: list) -> list:
    # What PostgreSQL's COPY sends for a JSON adapter: the text of its dumps(obj).
    return [value.dumps(value.obj) if callable(getattr(value, "dumps", None)) else value for value in values]


@settings(max_examples=60, deadline=None)
@given(row_values, st.sampled_from([None, "Asia/Tokyo"]))
@example({"id": "0", "task_name": "", "result": -0.0}, None)  # falsy, but not an empty list or dict (COPY: "-0.0")
def test_new_params_are_the_insert_params_of_the_new_record(values, zone):
    # The instance-free path (calling/direct.py) against the instance's: the same parameters,
    # and for COPY the same JSON text the adapters would be dumped to.
    in_zone(zone)
    try:
        values = {"enqueued_at": timezone.now(), **values}  # the default is the time of each call
        expected = rows.insert_params(rows.new_record(**values), connection)
        assert comparable(rows.new_params(values, connection)) == comparable(expected)
        text = rows.new_params(values, connection, text_json=True)
        assert text == copy_text(expected)
        if connection.vendor == "postgresql":
            json_columns = [
                i for i, f in enumerate(TaskRecord._meta.concrete_fields) if f.get_internal_type() == "JSONField"
            ]
            assert all(isinstance(text[i], str) or text[i] is None for i in json_columns)
    finally:
        in_zone(None)


def test_new_params_give_each_row_the_time_of_its_own_call():
    first = rows.new_params({"id": "t1", "task_name": "t"}, connection)
    second = rows.new_params({"id": "t2", "task_name": "t"}, connection)
    index = [f.attname for f in TaskRecord._meta.concrete_fields].index("enqueued_at")
    assert first[index] is not None and first[index] <= second[index]


def test_new_record_sends_the_init_signals_when_they_have_receivers():
    seen = []

    def before(sender, args, kwargs, **extra):
        seen.append(("pre", len(args), kwargs))

    def after(sender, instance, **extra):
        seen.append(("post", instance.id, instance.queue))

    pre_init.connect(before, sender=TaskRecord)
    post_init.connect(after, sender=TaskRecord)
    try:
        built = rows.new_record(id="s1", task_name="t", queue="q")
    finally:
        pre_init.disconnect(before, sender=TaskRecord)
        post_init.disconnect(after, sender=TaskRecord)
    same_instance(built, TaskRecord(id="s1", task_name="t", queue="q", enqueued_at=built.enqueued_at))
    assert seen == [("pre", len(TaskRecord._meta.concrete_fields), {}), ("post", "s1", "q")]


def test_new_records_get_their_own_mutable_defaults():
    first, second = rows.new_record(id="m1", task_name="t"), rows.new_record(id="m2", task_name="t")
    first.errors.append({"x": 1})
    first.headers["h"] = 1
    assert second.errors == [] and second.headers == {} and first.enqueued_at <= second.enqueued_at


def test_new_record_refuses_an_unknown_field():
    with pytest.raises(TypeError, match="nope"):
        rows.new_record(id="x", task_name="t", nope=1)


def test_read_rows_reads_rows_as_the_orm_does():
    now = timezone.now()
    TaskRecord.objects.create(id="r1", task_name="t", args=[1, {"a": 2}], eta=now, result={"x": [1]})
    TaskRecord.objects.create(id="r2", task_name="t")
    with transaction.atomic():
        rows = sql.read_rows("default", ["r1", "r2", "missing"], lock=True)
    assert set(rows) == {"r1", "r2"}
    for pk, row in rows.items():
        orm = TaskRecord.objects.get(pk=pk)
        assert all(getattr(row, f.attname) == getattr(orm, f.attname) for f in TaskRecord._meta.concrete_fields)
        assert row._state.adding is False and row._state.db == "default"


def test_update_many_counts_only_the_rows_whose_fence_held():
    for pk in ("u1", "u2", "u3"):
        TaskRecord.objects.create(id=pk, task_name="t", lease_token=f"tok-{pk}")
    TaskRecord.objects.filter(pk="u3").update(state="REVOKED")
    rows = [("SUCCESS", pk, token, RUNNABLE) for pk, token in (("u1", "tok-u1"), ("u2", "stale"), ("u3", "tok-u3"))]
    changed = batched.update_many("default", ("state",), ("id", "lease_token", "state"), rows)
    assert changed == 1
    assert dict(TaskRecord.objects.values_list("pk", "state")) == {"u1": "SUCCESS", "u2": "PENDING", "u3": "REVOKED"}


def test_update_matches_a_none_as_is_null_as_the_orm_filter_does():
    # The idle start's compare-and-set (record/claiming.py) matches a lease it read as NULL: with
    # "= NULL" in the WHERE it would match no row, and every such start would go the locked path.
    TaskRecord.objects.create(id="n1", task_name="t")
    TaskRecord.objects.create(id="n2", task_name="t", lease_expires_at=timezone.now())
    for pk in ("n1", "n2"):
        assert sql.update("default", {"worker": "w"}, id=pk, lease_expires_at=None) == (pk == "n1")
    assert dict(TaskRecord.objects.values_list("pk", "worker")) == {"n1": "w", "n2": ""}


def test_update_and_update_many_store_what_the_orm_update_stores():
    now = timezone.now()
    values = {
        "result": {"a": [1, None]},
        "worker_ids": [],
        "errors": [{"x": 1}],
        "finished_at": now,
        "lease_expires_at": None,
        "attempts": 2,
        "traceback": "",
        "ignore_result": True,
    }
    for pk in ("orm", "one", "many"):
        TaskRecord.objects.create(id=pk, task_name="t")
    TaskRecord.objects.filter(pk="orm").update(**values)
    assert sql.update("default", values, id="one") == 1
    assert batched.update_many("default", tuple(values), ("id",), [(*values.values(), "many")]) == 1
    orm, one, many = (TaskRecord.objects.get(pk=pk) for pk in ("orm", "one", "many"))
    for name in values:
        assert getattr(one, name) == getattr(orm, name) == getattr(many, name), name


# What the worker's batched writes assign (record/transitions.py), generated: each row's values differ.
# Text without NUL and numbers without infinities, which PostgreSQL cannot hold (the ORM's write fails too).
storable_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=6)
storable_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
)
storable_json = st.recursive(
    storable_scalars | storable_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(storable_text, inner, max_size=3),
    max_leaves=6,
)
ended_values = st.fixed_dictionaries(
    {
        "state": st.sampled_from(list(State)),
        "result": storable_json,
        "started_at": st.none() | times,
        "finished_at": st.none() | times,
        "lease_expires_at": st.none() | times,
        "exception_type": storable_text,
        "exception_message": storable_text,
        "traceback": storable_text,
        "attempts": st.integers(0, 2**31 - 1),
        "worker_ids": st.lists(storable_text, max_size=3),
        "priority": st.integers(-100, 100),
        "ignore_result": st.booleans(),
    }
)


@settings(max_examples=40, deadline=None)
@given(st.lists(ended_values, min_size=2, max_size=12), st.data())
def test_update_many_of_many_rows_stores_what_one_orm_update_per_row_stores(batch, data):
    # On PostgreSQL the rows go in one UPDATE ... FROM (VALUES ...): each row's own values, typed
    # as its columns even when every row holds NULL (or the same value) in one of them, and each
    # fenced by its own token, beside a constant IN list; elsewhere one executemany.
    TaskRecord.objects.all().delete()
    names = tuple(batch[0])
    fenced = data.draw(st.lists(st.booleans(), min_size=len(batch), max_size=len(batch)))
    for i in range(len(batch)):
        TaskRecord.objects.create(id=f"orm{i}", task_name="t", lease_token=f"tok{i}")
        TaskRecord.objects.create(id=f"many{i}", task_name="t", lease_token=f"tok{i}")
    rows = [
        (*(values[name] for name in names), f"many{i}", f"tok{i}" if holds else "stale", RUNNABLE)
        for i, (values, holds) in enumerate(zip(batch, fenced, strict=True))
    ]
    changed = batched.update_many("default", names, ("id", "lease_token", "state"), rows)
    assert changed == sum(fenced)
    for i, (values, holds) in enumerate(zip(batch, fenced, strict=True)):
        orm, many = TaskRecord.objects.get(pk=f"orm{i}"), TaskRecord.objects.get(pk=f"many{i}")
        if holds:
            TaskRecord.objects.filter(pk=f"orm{i}").update(**values)
            orm.refresh_from_db()
        for field in TaskRecord._meta.concrete_fields:
            if field.name not in ("id", "enqueued_at"):  # created apart, each row at its own time
                assert getattr(many, field.attname) == getattr(orm, field.attname), (i, field.name)


def test_update_many_with_different_in_lists_per_row_fences_each_row_by_its_own():
    for pk in ("d1", "d2"):
        TaskRecord.objects.create(id=pk, task_name="t", state="STARTED")
    rows = [("SUCCESS", "d1", ("PENDING",)), ("SUCCESS", "d2", ("STARTED",))]
    assert batched.update_many("default", ("state",), ("id", "state"), rows) == 1
    assert dict(TaskRecord.objects.values_list("pk", "state")) == {"d1": "STARTED", "d2": "SUCCESS"}


def test_update_many_writes_a_batch_larger_than_one_statement_holds(monkeypatch):
    monkeypatch.setattr(batched, "VALUES_ROWS", 3)
    for i in range(7):
        TaskRecord.objects.create(id=f"b{i}", task_name="t")
    rows = [(i, f"w{i}", f"b{i}") for i in range(7)]
    assert batched.update_many("default", ("attempts", "worker"), ("id",), rows) == 7
    assert sorted(TaskRecord.objects.values_list("attempts", "worker")) == [(i, f"w{i}") for i in range(7)]


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["result", "worker_ids", "errors", "started_at", "finished_at", "lease_expires_at", "eta"]),
    st.one_of(storable_json, times, st.lists(storable_text, max_size=3)),
    st.sampled_from([None, "Asia/Tokyo"]),
)
def test_an_update_converts_each_value_as_its_field_would(name, value, zone):
    # The fast paths (UTC times, plain JSON values) against get_db_prep_save, in the database's
    # default zone (UTC) and in another one (where SQLite's text must be converted).
    field = TaskRecord._meta.get_field(name)
    if isinstance(field, DateTimeField) != isinstance(value, datetime):
        return  # a value its field would refuse: not what the worker writes
    in_zone(zone)
    try:
        wrapper = connections["default"]
        wrapper.ensure_connection()
        row = sql.row_params((name,), (value,), wrapper)
        assert comparable(row) == comparable([field.get_db_prep_save(value, wrapper)])
    finally:
        in_zone(None)


def test_update_many_shares_only_values_that_would_be_written_alike():
    # On PostgreSQL a value every row shares is sent once; True, 1 and 1.0 are equal in Python
    # but not in JSON, and [1] is not [True].
    results = [True, 1, 1.0, [1], [True], {"a": 1}, {"a": True}, 0.0, "1"]
    for i in range(len(results)):
        TaskRecord.objects.create(id=f"s{i}", task_name="t")
    now = timezone.now()
    rows = [(result, now, "same", f"s{i}") for i, result in enumerate(results)]
    assert batched.update_many("default", ("result", "finished_at", "worker"), ("id",), rows) == len(results)
    stored = {
        pk: (result, finished, worker)
        for pk, result, finished, worker in TaskRecord.objects.values_list("pk", "result", "finished_at", "worker")
    }
    for i, result in enumerate(results):
        value, finished, worker = stored[f"s{i}"]
        assert (value, type(value), finished, worker) == (result, type(result), now, "same"), i
