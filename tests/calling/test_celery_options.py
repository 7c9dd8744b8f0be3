"""Every apply_async option Celery 5.7 documents is honoured or refused with the reason: none is ignored.

The list below is copied from Celery 5.7's Task.apply_async docstring (its "Arguments" section) and
kombu.Producer.publish's signature, which apply_async passes on: written apart from djtasks' table,
so an option missing from the table fails here.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import djtasks.publisher
from djtasks import send_task, signature
from djtasks.calling import publisher
from djtasks.core.options import CELERY_OPTIONS, HONOURED, REFUSED, ExecutionOptions
from djtasks.exceptions import BrokerUnavailable, InvalidCall
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support import strategies
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, soft_catch, work

pytestmark = [pytest.mark.django_db(transaction=True)]
# The calling options' table lives in the docs' guide to declaring and calling tasks.
README = (Path(__file__).resolve().parents[2] / "docs" / "topics" / "tasks.md").read_text()
CELERY_APPLY_ASYNC = """args kwargs countdown eta expires shadow connection retry retry_policy time_limit
    soft_time_limit queue exchange routing_key priority serializer compression link link_error producer
    add_to_parent ignore_result publisher headers task_id""".split()
KOMBU_PUBLISH = """routing_key delivery_mode mandatory immediate priority content_type content_encoding
    serializer headers compression exchange retry retry_policy declare expiration timeout confirm_timeout""".split()
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("DJTASKS_ATTACK_EXAMPLES", "25")) * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def events_of(task_id: str) -> list[dict[str, Any]]:
    return [
        fields for _, fields in get_broker().read_events("0", block_ms=None, count=1000) if fields.get("id") == task_id
    ]


def queued() -> dict[str, int]:
    djtasks.publisher.flush()
    return {queue: sum(stats.values()) for queue, stats in get_broker().queue_stats().items()}


@pytest.mark.parametrize("option", sorted(set(CELERY_APPLY_ASYNC) | set(KOMBU_PUBLISH)))
def test_every_documented_celery_option_is_in_the_table_and_the_readme(option):
    assert option in CELERY_OPTIONS
    table = README[README.index("| option | djtasks | meaning |") :].split("\n\n")[0]
    first_cells = [line.split("|")[1] for line in table.splitlines()[2:]]
    assert any(f"`{option}`" in cell for cell in first_cells), f"docs/topics/tasks.md's calling table lacks {option}"
    row = next(line for line in table.splitlines() if f"`{option}`" in line.split("|")[1])
    assert row.split("|")[2].strip() == CELERY_OPTIONS[option].support


@pytest.mark.parametrize("option", sorted(name for name, o in CELERY_OPTIONS.items() if o.support == REFUSED))
def test_a_refused_option_says_why_and_writes_nothing(redis_server, option):
    value = object()
    with pytest.raises(InvalidCall, match=re.escape(f"{option}=")) as info:
        add.apply_async((1, 2), **{option: value})
    assert CELERY_OPTIONS[option].meaning in str(info.value)
    with pytest.raises(InvalidCall, match=re.escape(CELERY_OPTIONS[option].meaning)):
        add.s(1, 2).set(**{option: value}).apply_async()
    assert TaskRecord.objects.count() == 0 and queued() == {}


def test_the_seeds_calls_run_or_say_why(worker):
    """The issue's seeds call apply_async((2, 2), retry=False), serializer='json' and compression='zlib'."""
    worker()
    assert add.apply_async((2, 2), retry=False).get(timeout=20) == 4
    assert add.apply_async((2, 2), serializer="json").get(timeout=20) == 4
    with pytest.raises(InvalidCall, match="djtasks carries JSON only"):
        add.apply_async((2, 2), serializer="pickle")
    with pytest.raises(InvalidCall, match="compression='zlib' is not supported: .*nothing|no message body"):
        add.apply_async((2, 2), compression="zlib")
    assert add.apply_async((1, 1), exchange="", mandatory=False, content_type="application/json").get(timeout=20) == 2


def test_routing_key_names_the_queue_on_a_direct_route(worker):
    worker("-Q", "hipri")
    result = add.apply_async((1, 2), routing_key="hipri")
    assert result.get(timeout=20) == 3
    assert TaskRecord.objects.get(pk=result.id).queue == "hipri"
    assert add.apply_async((1, 2), queue="hipri", routing_key="hipri").get(timeout=20) == 3
    with pytest.raises(InvalidCall, match="routing_key='other' with queue='hipri'"):
        add.apply_async((1, 2), queue="hipri", routing_key="other")
    with pytest.raises(InvalidCall, match="exchange='tasks' is not supported: djtasks has no exchanges"):
        add.apply_async((1, 2), exchange="tasks")
    assert send_task("tests.testapp.tasks.add", (2, 2), routing_key="hipri").get(timeout=20) == 4


def test_a_call_s_time_limits_are_stored_and_enforced_for_that_call_only(worker):
    worker()
    soft = soft_catch.apply_async((5,), soft_time_limit=0.5)
    assert soft.get(timeout=20) == "soft limit"
    assert TaskRecord.objects.get(pk=soft.id).options == {"soft_time_limit": 0.5}
    hard = work.apply_async(("hard", 30), time_limit=1)
    with pytest.raises(Exception, match="TimeLimitExceeded|time limit"):
        hard.get(timeout=30)
    assert TaskRecord.objects.get(pk=hard.id).exception_type == "djtasks.exceptions.TimeLimitExceeded"
    # The next call of the same task runs without them.
    assert soft_catch.delay(0.8).get(timeout=20) == "no limit"


def test_shadow_is_the_name_shown_for_that_call(worker):
    worker()
    result = add.apply_async((1, 1), shadow="add-shown")
    assert result.get(timeout=20) == 2
    row = TaskRecord.objects.get(pk=result.id)
    assert row.task_name == "tests.testapp.tasks.add" and row.shown_name == "add-shown"
    assert wait_for(lambda: any(e.get("type") == "task-succeeded" for e in events_of(result.id)), timeout=10)
    assert {e.get("name") for e in events_of(result.id)} == {"add-shown"}
    with pytest.raises(InvalidCall, match="shadow"):
        add.apply_async((1, 1), shadow="two\nlines")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"time_limit": float("nan")}, "time_limit"),
        ({"time_limit": 0}, "time_limit"),
        ({"soft_time_limit": -1}, "soft_time_limit"),
        ({"time_limit": True}, "time_limit"),
        ({"time_limit": 1, "soft_time_limit": 2}, "soft_time_limit"),
        ({"shadow": ""}, "shadow"),
        ({"shadow": "x" * 256}, "shadow"),
        ({"add_to_parent": "no"}, "add_to_parent"),
        ({"retry": "yes"}, "retry"),
        ({"retry_policy": [3]}, "retry_policy"),
        ({"retry_policy": {"max_retries": None}}, "max_retries"),
        ({"retry_policy": {"max_retries": 3.5}}, "max_retries"),
        ({"retry_policy": {"interval_step": float("inf")}}, "interval_step"),
        ({"retry_policy": {"interval_max": -1}}, "interval_max"),
        ({"retry_policy": {"retry_errors": (OSError,)}}, "retry_errors"),
        ({"retry_policy": {"tries": 3}}, "unknown keys"),
        ({"retry": False, "retry_policy": {"max_retries": 1}}, "retry_policy"),
        ({"serializer": "msgpack"}, "JSON only"),
        ({"routing_key": ""}, "queue"),
    ],
)
def test_a_bad_value_of_a_new_option_is_refused_by_name(redis_server, options, named):
    with pytest.raises(InvalidCall, match=named):
        add.apply_async((1, 2), **options)
    assert TaskRecord.objects.count() == 0 and queued() == {}


limits = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**12), st.booleans())


@HYPOTHESIS
@given(hard=limits, soft=limits, shadow=st.one_of(st.none(), strategies.texts, st.text(max_size=300)))
def test_generated_limits_and_shadows_are_stored_as_given_or_refused_by_name(redis_server, hard, soft, shadow):
    def good(value: Any) -> bool:
        return value is None or (
            not isinstance(value, bool)
            and isinstance(value, int | float)
            and math.isfinite(value)
            and 0 < value <= 365 * 24 * 3600
        )

    ok_shadow = shadow is None or (
        0 < len(shadow) <= 255
        and not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]", shadow)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in shadow)
    )
    ok = good(hard) and good(soft) and ok_shadow and not (hard and soft and soft > hard)
    options = {"time_limit": hard, "soft_time_limit": soft, "shadow": shadow}
    rows = TaskRecord.objects.count()
    if not ok:
        with pytest.raises(InvalidCall, match="time_limit|shadow"):
            add.apply_async((1, 2), **options)
        assert TaskRecord.objects.count() == rows
        return
    row = TaskRecord.objects.get(pk=add.apply_async((1, 2), **options).id)
    expected = {k: (float(v) if k != "shadow" else v) for k, v in options.items() if v is not None}
    assert row.options == expected


def test_options_pass_through_signatures_set_and_clone(redis_server):
    sig = add.s(1).set(shadow="via-set", time_limit=9)
    row = TaskRecord.objects.get(pk=sig.apply_async((2,), soft_time_limit=3).id)
    assert row.options == {"shadow": "via-set", "time_limit": 9.0, "soft_time_limit": 3.0}
    clone = signature("tests.testapp.tasks.add", (1, 1), routing_key="hipri").clone(shadow="cloned")
    row = TaskRecord.objects.get(pk=clone.apply_async().id)
    assert row.queue == "hipri" and row.options == {"shadow": "cloned"}


class FlakyPublish:
    """Make the after-commit publish fail with a connection error `failures` times, then work."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int):
        self.calls = 0
        broker = get_broker()
        real = broker.publish_nowait

        def publish_nowait(items: Any, runs: Any = ()) -> Any:
            self.calls += 1
            if self.calls <= failures:
                raise BrokerUnavailable("connection refused (injected)")
            return real(items, runs)

        monkeypatch.setattr(broker, "publish_nowait", publish_nowait)
        monkeypatch.setattr(publisher, "_breaker", {"open_until": 0.0})


def test_retry_true_tries_the_publish_again_as_retry_policy_says(redis_server, monkeypatch):
    flaky = FlakyPublish(monkeypatch, failures=2)
    policy = {"max_retries": 3, "interval_start": 0, "interval_step": 0.05, "interval_max": 0.1}
    add.apply_async((1, 2), retry=True, retry_policy=policy)
    assert flaky.calls == 3 and queued() == {"default": 1}


def test_retry_false_makes_one_attempt_and_leaves_the_row_to_the_sweep(redis_server, monkeypatch):
    flaky = FlakyPublish(monkeypatch, failures=1)
    result = add.apply_async((1, 2), retry=False)
    assert flaky.calls == 1 and queued() == {}
    assert TaskRecord.objects.get(pk=result.id).state == "PENDING"  # the outbox sweep publishes it


def test_a_policy_runs_out_then_the_sweep_publishes_the_row(worker, monkeypatch):
    flaky = FlakyPublish(monkeypatch, failures=10)
    result = add.apply_async((3, 4), retry=True, retry_policy={"max_retries": 2, "interval_step": 0.01})
    assert flaky.calls == 3 and queued() == {}
    worker()
    assert result.get(timeout=30) == 7


def test_execution_options_keep_only_what_the_row_needs():
    options = ExecutionOptions.build(time_limit=5, shadow="s", add_to_parent=False, retry=True)
    assert options.stored() == {"time_limit": 5.0, "shadow": "s", "add_to_parent": False}
    assert options.publish_retry is not None and options.publish_retry.delays() == [0.0, 0.2, 0.2]
    assert all(o.support == HONOURED for n, o in CELERY_OPTIONS.items() if n in ("retry", "shadow", "time_limit"))
