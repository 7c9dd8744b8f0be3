"""The hot-path statements write and read exactly what the ORM would."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from djtasks.models import TaskRecord
from djtasks.record import sql
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
    assert comparable(sql.insert_params(sql.new_record(**values), connection)) == comparable(
        orm_params(TaskRecord(**values))
    )


def test_new_record_refuses_an_unknown_field():
    with pytest.raises(TypeError, match="nope"):
        sql.new_record(id="x", task_name="t", nope=1)


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
    changed = sql.update_many("default", ("state",), ("id", "lease_token", "state"), rows)
    assert changed == 1
    assert dict(TaskRecord.objects.values_list("pk", "state")) == {"u1": "SUCCESS", "u2": "PENDING", "u3": "REVOKED"}


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
    assert sql.update_many("default", tuple(values), ("id",), [(*values.values(), "many")]) == 1
    orm, one, many = (TaskRecord.objects.get(pk=pk) for pk in ("orm", "one", "many"))
    for name in values:
        assert getattr(one, name) == getattr(orm, name) == getattr(many, name), name
