import time

from djtasks import task


@task
def noop(i):
    return i


@task
def latency(sent):
    """Return how long after `sent` (time.time() at publish) this task started."""
    return time.time() - sent
