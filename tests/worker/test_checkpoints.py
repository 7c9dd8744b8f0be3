"""SQLite's WAL checkpoints: the worker's parent copies the log between child events, so the commit
that takes it past 1,000 pages (SQLite's default), which checkpoints before it returns, finds
little left to copy and sync (that took 4-6 ms of 1-2% of idle round trips: their p99)."""

from __future__ import annotations

import struct
import time

import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.utils import timezone

from djtasks.record import wal
from djtasks.record.models import TaskRecord
from djtasks.worker import checkpoints
from tests.support.waiting import wait_for
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write-ahead log")
DEFAULT_PAGES = 1000  # SQLite's own wal_autocheckpoint


def pragma(sql: str) -> tuple[int, ...]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


def log_state() -> tuple[int, int]:
    """(pages in the log, pages of it copied into the database), read from the WAL index (the -shm
    file) without checkpointing: mxFrame at byte 16 of its header, nBackfill at byte 96, native order."""
    with open(f"{connection.settings_dict['NAME']}-shm", "rb") as shm:
        head = shm.read(100)
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


@sqlite_only
def test_the_parent_copies_the_log_while_the_worker_idles_between_round_trips(worker):
    """Before, nobody copied the log until a commit took it past 1,000 pages: then that commit did."""
    assert pragma("PRAGMA wal_autocheckpoint") == (wal.BACKSTOP_PAGES,)  # the caller's too (record/wal.py)
    worker("-c", "2")
    for i in range(5):
        assert add.delay(i, 1).get(timeout=30) == i + 1
    time.sleep(0.3)  # the children wait for work: no transaction is open
    assert pragma("PRAGMA wal_checkpoint(TRUNCATE)")[0] == 0  # the log restarts empty
    for i in range(30):  # about 15 pages each: well under SQLite's line
        assert add.delay(i, 2).get(timeout=30) == i + 2
    pages, copied = log_state()
    assert 0 < pages < DEFAULT_PAGES
    assert wait_for(lambda: log_state()[1] == log_state()[0], timeout=5), f"{log_state()} (pages, copied)"


@sqlite_only
def test_a_child_connection_keeps_sqlites_checkpoint_only_as_a_backstop():
    """A child's connections (made after leave_to_the_parent) checkpoint at BACKSTOP_PAGES, should the parent stall."""
    connection.close()
    checkpoints.leave_to_the_parent()
    try:
        connection.ensure_connection()
        assert pragma("PRAGMA wal_autocheckpoint") == (checkpoints.BACKSTOP_PAGES,)
    finally:
        connection_created.disconnect(dispatch_uid="djtasks.worker.checkpoints")
        connection.close()


def test_the_parents_checkpoint_duty_comes_round_only_for_sqlite():
    """Elsewhere there is no log to copy: its timer is never due again (it walked the children every 50 ms)."""
    expected = checkpoints.CHECKPOINT_SECONDS if connection.vendor == "sqlite" else float("inf")
    assert checkpoints.interval("default") == expected


def reconnect_with(init_command: str) -> None:
    connection.close()
    connection.settings_dict["OPTIONS"] = {**connection.settings_dict["OPTIONS"], "init_command": init_command}
    connection.ensure_connection()


@sqlite_only
def test_a_callers_commits_past_sqlites_line_leave_the_copy_to_the_worker():
    """With SQLite's default, the caller's commit that took the log past 1,000 pages copied it all
    and synced before it returned (its enqueue's share of the p99); now it leaves that to the parent."""
    assert pragma("PRAGMA wal_checkpoint(TRUNCATE)")[0] == 0  # no worker, no reader: the log starts empty
    now, big = timezone.now(), "x" * 3000  # about a page a row
    for start in range(0, 1500, 100):  # 15 commits, the log past 1,000 pages after about 10 of them
        TaskRecord.objects.bulk_create(
            TaskRecord(id=f"wal-{i}", task_name="tests.testapp.tasks.add", args=[big], enqueued_at=now)
            for i in range(start, start + 100)
        )
    pages, copied = log_state()
    assert pages > DEFAULT_PAGES and copied == 0, f"{pages} pages logged, {copied} copied: a commit checkpointed"


@sqlite_only
def test_a_wal_autocheckpoint_the_user_set_is_kept_and_other_databases_keep_sqlites():
    options = dict(connection.settings_dict["OPTIONS"])
    try:
        reconnect_with(options.get("init_command", "") + " PRAGMA wal_autocheckpoint=500;")
        assert pragma("PRAGMA wal_autocheckpoint") == (500,)
        reconnect_with(options.get("init_command", ""))
        assert pragma("PRAGMA wal_autocheckpoint") == (wal.BACKSTOP_PAGES,)
        with pytest.MonkeyPatch.context() as patch:  # as if a router sent the task table elsewhere
            patch.setattr(wal, "task_database", lambda: "elsewhere")
            reconnect_with(options.get("init_command", ""))
            assert pragma("PRAGMA wal_autocheckpoint") == (DEFAULT_PAGES,)
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = options
