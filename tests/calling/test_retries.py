"""Retries: bind=True, self.request, self.retry(), autoretry_for with backoff, takes_context."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from djtasks import AsyncResult, task
from djtasks.calling.retry import backoff_seconds
from djtasks.core.message import Message
from djtasks.exceptions import ImproperlyDeclared, MaxRetriesExceededError
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.testapp.tasks import always_retry, autoretried, autoretried_with_kwargs, context_retry, flaky

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_bound_task_retries_and_sees_its_request(worker, ledger):
    worker()
    result = flaky.apply_async(("f1", 3), headers={"h": 1})
    value = result.get(timeout=30)
    assert value["retries"] == 2 and value["id"] == result.id and value["args"] == ["f1", 3]
    assert value["queue"] == "default" and value["hostname"].startswith("djtasks@") and value["headers"] == {"h": 1}
    assert ledger.read_text().split() == ["f1", "0", "f1", "1", "f1", "2"]
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "SUCCESS" and row.retries == 2 and row.attempts == 3
    # The error of every attempt is kept, not only the last.
    assert [e["message"] for e in row.errors] == ["attempt 1 failed", "attempt 2 failed"]


def test_the_state_is_retry_while_the_task_waits(worker, ledger):
    worker()
    result = flaky.apply_async(("f2", 2))
    deadline = time.monotonic() + 20
    seen = set()
    while time.monotonic() < deadline and "SUCCESS" not in seen:
        seen.add(result.state)
        time.sleep(0.02)
    assert "RETRY" in seen and "SUCCESS" in seen
    row = TaskRecord.objects.get(pk=result.id)
    assert row.eta is not None  # the retry's due time, kept in the row


def test_retry_raises_max_retries_exceeded_when_they_run_out(worker):
    worker()
    result = always_retry.delay()
    with pytest.raises(MaxRetriesExceededError, match="max_retries=1"):
        result.get(timeout=30)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "FAILURE" and row.retries == 1 and len(row.errors) == 2


def test_retry_with_exc_fails_with_that_error_when_they_run_out(worker, ledger):
    worker()
    result = flaky.apply_async(("f3", 10))  # max_retries=2: three attempts, then the error itself
    with pytest.raises(ValueError, match="attempt 3 failed"):
        result.get(timeout=30)
    assert len(TaskRecord.objects.get(pk=result.id).errors) == 3


def test_autoretry_for_retries_with_exponential_backoff(worker, ledger):
    worker()
    result = autoretried.delay("a1")
    with pytest.raises(ConnectionError, match="unreachable a1"):
        result.get(timeout=30)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.retries == 3 and row.attempts == 4 and len(row.errors) == 4
    assert ledger.read_text().split() == ["a1"] * 4
    times = [e["at"] for e in row.errors]
    assert times == sorted(times)


def test_backoff_delays_grow_and_are_capped():
    assert [backoff_seconds(autoretried, n) for n in range(4)] == [0.2, 0.4, 0.4, 0.4]
    jittered = task(retry_backoff=True, retry_backoff_max=5)(_plain)
    assert all(0 <= backoff_seconds(jittered, 10) <= 5 for _ in range(20))


def _plain():
    return None


def test_a_takes_context_task_retries_through_its_context(worker, ledger):
    worker()
    assert context_retry.delay("c1").get(timeout=30) == 1
    assert ledger.read_text().split() == ["c1", "0", "c1", "1"]


def test_a_retry_whose_worker_dies_before_requeueing_still_runs_at_its_eta(worker, redis_server):
    """A RETRY row whose message the reaper returned early still waits for its eta."""
    row = TaskRecord.objects.create(
        id="r-orphan",
        task_name="tests.testapp.tasks.add",
        args=[1, 2],
        state="RETRY",
        retries=1,
        eta=timezone.now() + dt.timedelta(seconds=2),
    )
    # Publish it as ready now, as the reaper would after the worker died: it must still wait for its eta.
    get_broker().client.hdel(get_broker().queue_key("default", "messages"), row.id)
    get_broker().publish([(Message(id=row.id, queue="default"), 0)])
    worker()
    assert AsyncResult(row.id).get(timeout=30) == 3
    row.refresh_from_db()
    assert row.started_at >= row.eta - dt.timedelta(seconds=0.5)


def test_bad_retry_options_are_refused_at_declaration():
    with pytest.raises(ImproperlyDeclared, match="autoretry_for"):
        task(autoretry_for="ValueError")(_plain)
    with pytest.raises(ImproperlyDeclared, match="autoretry_for"):
        task(autoretry_for=[ValueError, "KeyError"])(_plain)
    with pytest.raises(ImproperlyDeclared, match="max_retries"):
        task(max_retries=-1)(_plain)
    with pytest.raises(ImproperlyDeclared, match="rate_limit"):
        task(rate_limit="fast")(_plain)


def test_retry_kwargs_set_the_autoretries_limit_and_countdown_as_in_celery(worker, ledger):
    # Without retry_kwargs the declaration's default_retry_delay=60 would hold the second attempt a minute.
    worker()
    result = autoretried_with_kwargs.delay("k1")
    with pytest.raises(ValueError, match="bad k1"):
        result.get(timeout=20)
    assert ledger.read_text().split() == ["k1", "k1", "k1"]  # the first run and retry_kwargs' 2 retries
    row = TaskRecord.objects.get(pk=result.id)
    assert row.state == "FAILURE" and row.retries == 2


@pytest.mark.parametrize(
    "given, message",
    [
        ({"max_retries": 2, "eta": 1}, "retry_kwargs must be a dict of max_retries, countdown"),
        ([("max_retries", 2)], "retry_kwargs must be a dict"),
        ({"max_retries": -1}, r"retry_kwargs\['max_retries'\] must be a whole number"),
        ({"max_retries": True}, r"retry_kwargs\['max_retries'\] must be a whole number"),
        ({"countdown": "soon"}, r"retry_kwargs\['countdown'\] must be a number of seconds"),
        ({"countdown": float("nan")}, r"retry_kwargs\['countdown'\] must be a number of seconds"),
        ({"countdown": -1}, r"retry_kwargs\['countdown'\] must be a number of seconds"),
    ],
)
def test_bad_retry_kwargs_fail_at_declaration(given, message):
    with pytest.raises(ImproperlyDeclared, match=message):

        @task(autoretry_for=(ValueError,), retry_kwargs=given)
        def bad_retry_kwargs():
            pass
