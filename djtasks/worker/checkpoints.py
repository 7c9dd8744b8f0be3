"""SQLite's WAL checkpoints off the task path: the worker's parent copies the log between child events.

SQLite checkpoints inside the commit that takes its write-ahead log past 1,000 pages (its
default): that commit copies the pages into the database and syncs both files before it returns.
On an idle round trip that took 4-6 ms, in whichever commit crossed the line (a child's start or
outcome, or the caller's enqueue): 1-2% of round trips, so the p99. The parent now copies the log
every CHECKPOINT_SECONDS (PASSIVE: it waits for no reader and no writer), so the commit that
crosses the line finds nearly every page copied and has little left to copy and sync. Not while
a child holds a batch (a deep queue): there a checkpoint in a commit is shared by the batch, and
the parent's syncs (a wake-up each) would double its wake-ups in a drain. (The log
still restarts there: SQLite restarts it only from a writer that began with every page copied,
and the parent's copy seldom ends between two writes.) A child's connections keep the automatic
checkpoint only as a backstop, at BACKSTOP_PAGES, should the parent fall behind, whatever their
`init_command` says; other processes' connections to the task table's database do so too, unless
their `init_command` sets it (record/wal.py).
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from djtasks.record.wal import BACKSTOP_PAGES, backstop

CHECKPOINT_SECONDS = 0.05
__all__ = ["BACKSTOP_PAGES", "CHECKPOINT_SECONDS", "checkpoint", "interval", "leave_to_the_parent"]


def _backstop(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        backstop(connection)


def leave_to_the_parent() -> None:
    """In a child: its SQLite connections (open now or later) leave checkpoints to the parent."""
    connection_created.connect(_backstop, dispatch_uid="djtasks.worker.checkpoints")
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _backstop(None, conn)


def interval(db: str) -> float:
    """Seconds between the parent's checkpoints of a database: never (inf) but for SQLite, which alone has the log."""
    return CHECKPOINT_SECONDS if connections[db].vendor == "sqlite" else float("inf")


def checkpoint(db: str) -> None:
    """Copy the WAL's committed pages into an SQLite database, waiting for nobody (a no-op elsewhere)."""
    conn = connections[db]
    if conn.vendor == "sqlite":
        with conn.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
