"""Celery with django-celery-results: the worker stores each result as a row."""

import shutil
import sys
from pathlib import Path

from celery import group
from django.db import connection

from .tasks import latency, noop

NAME = "celery_db"
RESULTS_IN = "db"
PRIORITY = "priority=0 (Redis transport, priority_steps 0-9)"


def reset():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_celery_results_taskresult")
        cursor.execute("DELETE FROM django_celery_results_groupresult")


def enqueue(i):
    return noop.delay(i)


def enqueue_bulk(n, start=0):
    group(noop.s(i) for i in range(start, start + n)).apply_async()


def wait(handle, timeout):
    # The database backend polls; 5 ms instead of the default 0.5 s.
    return handle.get(timeout=timeout, interval=0.005)


def done_count():
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_celery_results_taskresult WHERE status = 'SUCCESS'")
        return cursor.fetchone()[0]


def send_latency_probe(sent):
    return latency.apply_async((sent,), priority=0)


def worker_argv():
    celery = shutil.which("celery", path=str(Path(sys.executable).parent))
    return [
        celery,
        "-A",
        "peers.celery_db",
        "worker",
        "-c",
        "2",
        "-P",
        "prefork",
        "-l",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
