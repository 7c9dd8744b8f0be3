import time

from django.tasks import task


@task
def noop(i):
    return i


@task(priority=100)
def latency(sent):
    """Return how long after `sent` (time.time() at publish) this task started."""
    return time.time() - sent
