import time

from celery import shared_task


@shared_task
def noop(i):
    return i


@shared_task
def latency(sent):
    """Return how long after `sent` (time.time() at publish) this task started."""
    return time.time() - sent
