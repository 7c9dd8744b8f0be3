"""The task table's indexes: a new row enters only those its queries need, and those queries still use one.

Every index a new row enters costs each INSERT (and bulk()'s COPY); an index of what a new row
lacks (a lease, an end) is partial. The queries run here are the real ones (the sweep, results
expiry, the dashboard, the admin's lists), captured as they run and explained on both databases;
on PostgreSQL with sequential scans off, so a plan without an index means none could serve it.
"""

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from djtasks.admin import stats
from djtasks.core.conf import get_settings
from djtasks.models import TaskRecord
from djtasks.record import transitions
from djtasks.transport.broker import get_broker
from djtasks.worker import maintenance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]

TABLE = TaskRecord._meta.db_table
# What a plain new row is in: the primary key, and the indexes of its state, queue, name and enqueue time.
ENTERED_BY_A_NEW_ROW = {
    "djtasks_task_enqueued_idx",
    "djtasks_task_state_idx",
    "djtasks_task_queue_idx",
    "djtasks_task_name_enq_idx",
    "djtasks_task_queue_enq_idx",
}


def index_definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [TABLE])
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s", [TABLE])
        return {name: sql or "" for name, sql in cursor.fetchall()}


def test_a_new_row_enters_only_the_primary_key_and_the_indexes_its_queries_need():
    full = {
        name
        for name, sql in index_definitions().items()
        if " WHERE " not in sql.upper() and not name.endswith("_pkey") and not name.startswith("sqlite_autoindex")
    }
    assert full == ENTERED_BY_A_NEW_ROW
    # PostgreSQL's varchar_pattern_ops twins serve only LIKE 'prefix%', which no djtasks query runs.
    assert not [sql for sql in index_definitions().values() if "pattern_ops" in sql]


def test_a_new_row_is_in_no_partial_index():
    TaskRecord.objects.create(id="new", task_name="t")
    with connection.cursor() as cursor:
        for name, sql in index_definitions().items():
            where = re.search(r"\bWHERE\b(.*)$", sql, re.IGNORECASE | re.DOTALL)
            if where:
                cursor.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE {where.group(1)}")
                assert cursor.fetchone()[0] == 0, name


def plan(sql: str) -> str:
    """The plan of a captured statement; on PostgreSQL with sequential scans off."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def scans_the_table(text: str) -> bool:
    if connection.vendor == "postgresql":
        return f"Seq Scan on {TABLE}" in text
    return bool(re.search(rf"\bSCAN {TABLE}\b(?! USING)", text))


def plans_of(run) -> list[tuple[str, str]]:
    """(statement, plan) of each filtered statement on the task table that run() makes."""
    with CaptureQueriesContext(connection) as captured:
        run()
    found = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if TABLE in sql and " WHERE " in sql and sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            found.append((sql, plan(sql)))
    assert found, "the code under test ran no filtered statement on the task table"
    return found


def admin_get(path: str):
    def run():
        user = User.objects.filter(username="root").first() or User.objects.create_superuser("root", "r@x.org", "pw")
        client = Client()
        client.force_login(user)
        assert client.get(path).status_code == 200

    return run


QUERIES = {
    # query: (what runs it, the indexes one of which one of its statements must use)
    "results expiry": (
        lambda: maintenance.expire_results(SimpleNamespace(RESULT_EXPIRES=60)),
        # Ended rows by state and end: PostgreSQL's planner picks among several task indexes here
        # (finished_at's, the state's, the failures'); what matters is that it scans no table.
        "djtasks_task_",
    ),
    "the outbox sweep": (
        lambda: maintenance.sweep_rows(get_broker(), get_settings(), full=False),
        ("djtasks_task_leased_idx", "djtasks_task_state_idx", "djtasks_task_enqueued_idx"),
    ),
    "the reaper's lease extension": (
        lambda: transitions.extend_leases("default", ["token"], timezone.now()),
        "djtasks_task_leased_idx",
    ),
    "the dashboard's throughput": (
        lambda: stats.throughput(timezone.now(), minutes=True),
        "djtasks_task_finished_at_idx",
    ),
    "the dashboard's per-task figures": (
        lambda: stats.per_task(timezone.now() - timedelta(hours=1)),
        "djtasks_task_finished_at_idx",
    ),
    "the task list filtered by name": (
        admin_get("/admin/djtasks/taskrecord/?task_name=app.tasks.add"),
        "djtasks_task_name_enq_idx",
    ),
    "the task list filtered by queue": (
        admin_get("/admin/djtasks/taskrecord/?queue=mail"),
        "djtasks_task_queue_enq_idx",
    ),
    "the task list filtered by state": (
        admin_get("/admin/djtasks/taskrecord/?state__exact=FAILURE"),
        ("djtasks_task_state_idx", "djtasks_task_failed_idx"),  # failures: PostgreSQL may take their own
    ),
    "the dead tasks, newest end first": (
        admin_get("/admin/djtasks/deadtask/"),
        # PostgreSQL reads the failures in order from their partial index, or (its planner's choice
        # varies from run to run on a table this small) the state's; SQLite's planner takes the
        # state's index and sorts them.
        {"postgresql": ("djtasks_task_failed_idx", "djtasks_task_state_idx"), "sqlite": "djtasks_task_state_idx"},
    ),
}


@pytest.mark.parametrize("name", QUERIES)
def test_each_query_of_the_task_table_uses_an_index(name):
    run, expected = QUERIES[name]
    TaskRecord.objects.create(id="t-1", task_name="app.tasks.add", state="FAILURE", finished_at=timezone.now())
    found = plans_of(run)
    assert not [(sql, text) for sql, text in found if scans_the_table(text)]
    expected = expected[connection.vendor] if isinstance(expected, dict) else expected
    expected = (expected,) if isinstance(expected, str) else expected
    assert any(name in text for _, text in found for name in expected), found


def test_a_batch_of_outcomes_finds_its_rows_by_id_behind_a_burst_the_statistics_predate():
    # The statistics were taken when every row had ended; then a burst is queued. The batch's
    # fenced UPDATE (each row's id and token, the runnable states as a constant list) must reach
    # its rows through the primary key: through the state's index it read every queued row for
    # each batch (PostgreSQL: 9 ms a batch of 8 with 2,000 queued, a drain quadratic in its depth).
    now = timezone.now()
    TaskRecord.objects.bulk_create(
        TaskRecord(id=f"old-{i}", task_name="t", state="SUCCESS", finished_at=now) for i in range(300)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    TaskRecord.objects.bulk_create(TaskRecord(id=f"q-{i}", task_name="t") for i in range(2000))
    batch = list(TaskRecord.objects.filter(pk__in=[f"q-{i}" for i in range(8)]))
    for record in batch:
        record.lease_token = f"tok-{record.pk}"
        record.save(update_fields=["lease_token"])
    done = [
        (
            SimpleNamespace(record=record, token=record.lease_token, started_at=now),
            SimpleNamespace(result=None, finished_at=now),
        )
        for record in batch
    ]
    with CaptureQueriesContext(connection) as captured:
        assert transitions.write_successes("default", done, now) == [True] * 8
    (statement,) = [
        q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(("UPDATE", "8 TIMES"))
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {statement}")  # the planner's own choice: sequential scans allowed
        else:  # one statement per row, run 8 times: its plan does not depend on the values
            statement = re.sub(r"^\d+ times: ", "", statement)
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", [None] * statement.count("%s"))
        text = "\n".join(str(row[-1]) for row in cursor.fetchall())
    assert not scans_the_table(text), text
    assert "djtasks_task_state_idx" not in text, text
    assert ("djtasks_task_pkey" if connection.vendor == "postgresql" else "sqlite_autoindex_djtasks_task") in text, text
