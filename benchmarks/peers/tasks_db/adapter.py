"""django-tasks-db: one row per task, claimed by polling (SELECT ... FOR UPDATE SKIP LOCKED).

db_worker is one process; the worker here is two of them (as the others run 2 processes),
started by a shell that forwards SIGTERM. They poll every 10 ms when idle (--interval 0.01;
the default is 1 s, which would make every round trip about half a second).
"""

import sys
import time

from django.db import connection, transaction
from django.tasks import TaskResultStatus

from .tasks import latency, noop

NAME = "tasks_db"
RESULTS_IN = "db"
PRIORITY = "priority=100 (django.tasks priority, highest first)"
POLL = 0.005


def reset():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_tasks_database_dbtaskresult")


def enqueue(i):
    return noop.enqueue(i)


def enqueue_bulk(n, start=0):
    with transaction.atomic():
        for i in range(start, start + n):
            noop.enqueue(i)


def wait(handle, timeout):
    deadline = time.monotonic() + timeout
    while True:
        handle.refresh()
        if handle.status == TaskResultStatus.SUCCESSFUL:
            return handle.return_value
        if handle.status == TaskResultStatus.FAILED:
            raise RuntimeError(f"task {handle.id} failed")
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {handle.id} not done within {timeout} s")
        time.sleep(POLL)


def done_count():
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_tasks_database_dbtaskresult WHERE status = 'SUCCESSFUL'")
        return cursor.fetchone()[0]


def send_latency_probe(sent):
    return latency.enqueue(sent)


def worker_argv():
    one = f"{sys.executable} -m django db_worker --interval 0.01 --no-startup-delay --no-reload -v 0"
    return ["sh", "-c", f"{one} & a=$!; {one} & b=$!; trap 'kill -TERM $a $b' TERM INT; wait; wait"]
