"""read_state() gives a row's state and result exactly as the ORM reads them."""

import pytest
from django.db import DatabaseError, connection, router, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks.core.states import State
from djtasks.models import TaskRecord
from djtasks.record import reading
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]

# What a JSON column holds: PostgreSQL's jsonb refuses NUL and lone surrogates in text.
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(state=st.sampled_from(list(State)), result=json_values)
def test_state_and_result_are_what_the_orm_reads(state, result):
    task_id = add.delay(1, 2).id
    TaskRecord.objects.filter(pk=task_id).update(state=state, result=result)
    row = TaskRecord.objects.get(pk=task_id)
    assert reading.read_state(router.db_for_read(TaskRecord), task_id) == (row.state, row.result)


@pytest.mark.parametrize("task_id", ["no-such-task", "it's %s; -- \" ", "\u00e9\u4e2d"])
def test_no_row_reads_as_none(task_id):
    assert reading.read_state(router.db_for_read(TaskRecord), task_id) is None


def test_a_read_is_seen_by_execute_wrappers_and_the_query_log_and_refused_in_a_broken_transaction():
    # On SQLite a read nothing watches runs on the sqlite3 cursor itself (rawsqlite): not one that is watched.
    task_id = add.delay(1, 2).id
    TaskRecord.objects.filter(pk=task_id).update(state=State.SUCCESS, result={"it's": "%s"})
    using = router.db_for_read(TaskRecord)
    seen: list[str] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        assert reading.read_state(using, task_id) == ("SUCCESS", {"it's": "%s"})
    with CaptureQueriesContext(connection) as logged:
        assert reading.read_state(using, task_id) == ("SUCCESS", {"it's": "%s"})
    assert len(seen) == 1 and seen[0].startswith("SELECT") and len(logged) == 1
    assert reading.read_state(using, task_id) == ("SUCCESS", {"it's": "%s"})
    # As Django's cursor: a statement in a transaction that an error broke is refused, not run.
    with transaction.atomic():
        try:
            with transaction.atomic(savepoint=False), connection.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table_at_all")
        except DatabaseError:
            pass
        with pytest.raises(TransactionManagementError):
            reading.read_state(using, task_id)
