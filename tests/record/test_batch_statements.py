"""A batch's UPDATE on PostgreSQL is one statement text whatever the batch's size, which psycopg parses once."""

import pytest
from django.db import connection
from django.utils import timezone
from psycopg import _queries

from djtasks.models import TaskRecord
from djtasks.record import many as batched
from djtasks.record import transitions
from djtasks.states import RUNNABLE

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("redis_server"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite writes a batch in one executemany"),
]


def _statements(calls):
    """Run each call with the statements it executes recorded: (sql text, number of parameters)."""
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        for call in calls:
            call()
    return seen


@pytest.mark.parametrize("shape", ["outcomes", "starts"])
def test_a_batch_update_has_one_text_for_every_size_and_few_enough_parameters_for_psycopg_to_keep_it(shape):
    # psycopg caches a statement's parsed placeholders only up to MAX_CACHED_STATEMENT_PARAMS (50):
    # UPDATE ... FROM (VALUES ...) of 16 outcomes took 88 parameters and a new text for each batch
    # size, so psycopg parsed it again for every batch. Arrays take one parameter per column.
    now = timezone.now()
    sizes = (2, 7, 16, 40)
    for size in sizes:
        for i in range(size):
            TaskRecord.objects.create(id=f"{size}-{i}", task_name="t", lease_token=f"tok-{size}-{i}")

    def outcomes(size):
        rows = [
            ("SUCCESS", i, now, timezone.now(), None, "", "", "", f"{size}-{i}", f"tok-{size}-{i}", RUNNABLE)
            for i in range(size)
        ]
        return lambda: batched.update_many("default", transitions._ENDED, transitions._FENCE, rows)

    def starts(size):
        rows = [(1, "w", ["w"], f"new-{size}-{i}", now, now, f"{size}-{i}") for i in range(size)]
        return lambda: batched.update_many("default", transitions.CLAIMED, ("id",), rows)

    batch = outcomes if shape == "outcomes" else starts
    seen = _statements([batch(size) for size in sizes])
    assert len(seen) == len(sizes)
    assert len({sql for sql, _ in seen}) == 1, [sql for sql, _ in seen]
    assert max(count for _, count in seen) <= _queries.MAX_CACHED_STATEMENT_PARAMS, seen
    if shape == "outcomes":
        assert TaskRecord.objects.filter(state="SUCCESS").count() == sum(sizes)
    else:
        assert TaskRecord.objects.filter(lease_token__startswith="new-").count() == sum(sizes)
