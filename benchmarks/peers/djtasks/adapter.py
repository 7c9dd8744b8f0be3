"""djtasks under the benchmark: one row per task, publish after commit."""

import sys

from django.db import connection

import djtasks
from djtasks.calling import publisher

from .tasks import latency, noop

NAME = "djtasks"
RESULTS_IN = "db"
PRIORITY = "priority=100"


def reset():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM djtasks_task")
        cursor.execute("DELETE FROM djtasks_deadletter")


def enqueue(i):
    return noop.delay(i)


def enqueue_bulk(n, start=0):
    with djtasks.bulk():  # one transaction: the rows in multi-row INSERTs, one publish
        for i in range(start, start + n):
            noop.delay(i)


def settle():
    """Wait for Redis's replies to the publishes sent without waiting (the budget counts them after)."""
    publisher.flush()


def wait(handle, timeout):
    return handle.get(timeout=timeout)


def done_count():
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM djtasks_task WHERE state = 'SUCCESS'")
        return cursor.fetchone()[0]


def send_latency_probe(sent):
    return latency.apply_async((sent,), priority=100)


def worker_argv():
    return [sys.executable, "-m", "django", "taskworker", "-c", "2", "-l", "WARNING"]
