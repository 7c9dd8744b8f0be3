"""Celery with the Redis result backend (results read through pub/sub)."""

import shutil
import sys
from pathlib import Path

from celery import group

from .celeryapp import app
from .tasks import latency, noop

NAME = "celery_redis"
RESULTS_IN = "redis"
PRIORITY = "priority=0 (Redis transport, priority_steps 0-9)"

_COUNT = "return #redis.call('keys', 'celery-task-meta-*')"


def reset():
    pass


def enqueue(i):
    return noop.delay(i)


def enqueue_bulk(n, start=0):
    group(noop.s(i) for i in range(start, start + n)).apply_async()


def wait(handle, timeout):
    return handle.get(timeout=timeout)


def done_count():
    return app.backend.client.eval(_COUNT, 0)


def send_latency_probe(sent):
    return latency.apply_async((sent,), priority=0)


def worker_argv():
    celery = shutil.which("celery", path=str(Path(sys.executable).parent))
    return [
        celery,
        "-A",
        "peers.celery_redis",
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
