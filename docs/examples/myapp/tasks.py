"""The example app's tasks: the tutorial shows the first one (from its djtasks import on)."""

from django.tasks import task as django_task

from djtasks import task


@task
def add(x, y):
    return x + y


# The tasks the topic guides call: the documentation's example app (docs/examples/myapp), which
# tests/test_docs_examples.py runs the pages' examples against, in a real worker.


@task
def mul(x, y):
    return x * y


@task
def xsum(numbers):
    return sum(numbers)


@task(bind=True, max_retries=3, default_retry_delay=0.1)
def flaky(self, fail_times):
    """Fail `fail_times` times with ConnectionError, retrying, then succeed."""
    if self.request.retries < fail_times:
        raise self.retry(exc=ConnectionError("not yet"), countdown=0.1)
    return self.request.retries


@task
def fail(message="boom"):
    raise ValueError(message)


@django_task
def greet(name):
    """Declared with django.tasks alone: it runs on djtasks unchanged."""
    return f"hello {name}"
