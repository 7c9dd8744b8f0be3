"""Huey with Redis storage: results in a Redis hash, the caller woken by notify_result."""

import sys

from huey.contrib.djhuey import HUEY

from .tasks import noop

NAME = "huey"
RESULTS_IN = "redis"
# RedisHuey's list queue has no priority; PriorityRedisHuey would change every other figure.
PRIORITY = None


def reset():
    pass


def enqueue(i):
    return noop(i)


def enqueue_bulk(n, start=0):
    noop.map(range(start, start + n))


def wait(handle, timeout):
    return handle.get(blocking=True, timeout=timeout)


def done_count():
    return HUEY.storage.result_store_size()


def send_latency_probe(sent):
    return None


def worker_argv():
    return [sys.executable, "-m", "django", "run_huey", "-w", "2", "-k", "process"]
