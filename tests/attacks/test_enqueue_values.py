"""Whatever a caller hands apply_async, either the row reads back as it was given, or a djtasks
error names what was wrong and nothing is written or published.

The expectation comes from oracles written apart from djtasks' own checks (tests/support/hostile.py):
a value is storable when JSON gives it back equal, with no NUL and no surrogate in any string, at
most 100 levels deep; a name when it is a non-empty string short enough, with no control character.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import djtasks.publisher
from djtasks import send_task
from djtasks.exceptions import DjtasksError, InvalidCall
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support import hostile, strategies
from tests.testapp.tasks import add, echo

pytestmark = [pytest.mark.django_db(transaction=True)]
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("DJTASKS_ATTACK_EXAMPLES", "25")) * 4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def good_name(value: Any, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and not CONTROL.search(value)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    )


def in_range(value: Any, now: datetime) -> bool:
    """A finite number of seconds that, added to now, is still a datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    try:
        now + timedelta(seconds=value)
    except OverflowError:
        return False
    return True


def published() -> int:
    djtasks.publisher.flush()
    return sum(sum(stats.values()) for stats in get_broker().queue_stats().values())


def expected_problems(args: list[Any], kwargs: dict[Any, Any], options: dict[str, Any]) -> list[str]:
    """What the oracles say is wrong, as the words an error must name (any one of them)."""
    now = timezone.now()
    bad = [f"args[{i}]" for i, value in enumerate(args) if not hostile.storable(value)]
    for name, value in kwargs.items():
        if not hostile.storable({name: 1}):
            bad.append("kwargs")
        elif not hostile.storable(value):
            bad.append(f"kwargs[{name!r}]")
    if "countdown" in options and "eta" in options:
        bad += ["countdown", "eta"]
    if "countdown" in options and not in_range(options["countdown"], now):
        bad.append("countdown")
    if "expires" in options and not in_range(options["expires"], now):
        bad.append("expires")
    if "queue" in options and not good_name(options["queue"], 100):
        bad.append("queue")
    if "task_id" in options and not good_name(options["task_id"], 255):
        bad.append("task_id")
    if "headers" in options and not hostile.storable(options["headers"]):
        bad.append("eader")  # Header / headers
    if "priority" in options and not -100 <= options["priority"] <= 100:
        bad.append("priority")
    return bad


def check_call(task: Any, args: list[Any], kwargs: dict[Any, Any], options: dict[str, Any]) -> None:
    bad = expected_problems(args, kwargs, options)
    rows, queued = TaskRecord.objects.count(), published()
    event("refused" if bad else "written")
    if bad:
        with pytest.raises(InvalidCall) as info:
            task.apply_async(args, kwargs, **options)
        error = info.value
        assert isinstance(error, DjtasksError) and isinstance(error, TypeError) and isinstance(error, ValueError)
        assert any(word in str(error) for word in bad), (bad, str(error))
        assert TaskRecord.objects.count() == rows and published() == queued
        return
    result = task.apply_async(args, kwargs, **options)
    row = TaskRecord.objects.get(pk=result.id)
    assert hostile.same(row.args, args), (row.args, args)
    assert hostile.same(row.kwargs, kwargs), (row.kwargs, kwargs)
    assert hostile.same(row.headers, options.get("headers") or {})
    assert row.queue == options.get("queue", "default")
    if "task_id" in options:
        assert row.id == options["task_id"]
    assert published() == queued + 1


names = st.one_of(strategies.texts, st.text(max_size=5), st.sampled_from(["", "x" * 101, "y" * 256, "q" * 10_000]))
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**13), 10**13),
    st.sampled_from([10**12, -(10**12), 10**11, 1e300, 0, -1]),
)
options = st.fixed_dictionaries(
    {},
    optional={
        "countdown": numbers,
        "eta": st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 30)),
        "expires": numbers,
        "queue": names,
        "task_id": names,
        "headers": st.dictionaries(strategies.texts, strategies.values, max_size=3),
        "priority": st.integers(-150, 150),
    },
)
kwargs = st.dictionaries(st.one_of(strategies.texts, st.integers(0, 3)), strategies.values, max_size=3)


@HYPOTHESIS
@given(args=st.lists(strategies.values, max_size=3), kwargs=kwargs, options=options)
@example(args=[{1: "a", "1": "b"}], kwargs={}, options={})
@example(args=["a\x00b"], kwargs={"s": "\udc80"}, options={})
@example(args=[], kwargs={}, options={"countdown": float("nan")})
@example(args=[], kwargs={}, options={"countdown": float("inf")})
@example(args=[], kwargs={}, options={"countdown": 10**12})
@example(args=[], kwargs={}, options={"expires": float("-inf")})
@example(args=[], kwargs={}, options={"queue": "q" * 10_000})
@example(args=[], kwargs={}, options={"task_id": "forged\n[ERROR] line"})
@example(args=[], kwargs={}, options={"headers": {"h": {2: "two"}}})
@example(args=[2**64 + 1, 1e20, -0.0, "😀"], kwargs={"x": [[], {}]}, options={"queue": "ünïcode"})
def test_apply_async_stores_exactly_what_it_was_given_or_names_what_it_refused(redis_server, args, kwargs, options):
    if isinstance(options.get("task_id"), str) and good_name(options["task_id"], 200):
        options["task_id"] = f"{uuid.uuid4().hex[:8]}-{options['task_id']}"  # ids are unique
    check_call(echo, args, kwargs, options)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"countdown": float("nan")}, "countdown"),
        ({"countdown": float("inf")}, "countdown"),
        ({"countdown": 10**12}, "countdown"),
        ({"countdown": "soon"}, "countdown"),
        ({"expires": float("nan")}, "expires"),
        ({"expires": 10**12}, "expires"),
        ({"eta": "2026-02-30T00:00:00"}, "eta"),
        ({"queue": "q" * 10_000}, "queue"),
        ({"queue": ""}, "queue"),
        ({"queue": "a\nb"}, "queue"),
        ({"task_id": "x" * 256}, "task_id"),
        ({"task_id": "a\x00b"}, "task_id"),
        ({"task_id": "a\nb"}, "task_id"),
        ({"headers": {"h": "\x00"}}, "headers"),
        ({"headers": {1: "one"}}, "headers"),
        ({"retries": -1}, "retries"),
        ({"not_an_option": 1}, "not_an_option"),
    ],
)
def test_a_bad_option_is_an_invalid_call_that_names_it_and_writes_nothing(redis_server, options, named):
    with pytest.raises(InvalidCall, match=named) as info:
        add.apply_async((1, 2), **options)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert TaskRecord.objects.count() == 0 and published() == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ([{1: "a", "1": "b"}], {}, r"args\[0\]\[1\]"),
        ([{"deep": [{"er": {2: "two"}}]}], {}, r"args\[0\]\['deep'\]\[0\]\['er'\]\[2\]"),
        (["a\x00b"], {}, r"args\[0\] .*NUL"),
        ([], {"y": ["\ud800"]}, r"kwargs\['y'\]\[0\] .*surrogate"),
        ([float("nan")], {}, r"args\[0\] .*nan"),
        ([], {"y": {1, 2}}, r"kwargs\['y'\] of task .* is not JSON-serializable"),
    ],
)
def test_an_argument_that_would_not_read_back_the_same_is_refused_by_name(redis_server, args, kwargs, named):
    with pytest.raises(InvalidCall, match=named):
        add.apply_async(args, kwargs)
    assert TaskRecord.objects.count() == 0 and published() == 0


def test_send_task_refuses_a_name_no_database_can_store(redis_server):
    for name in ["", "n" * 256, "a\nb", "a\x00b"]:
        with pytest.raises(InvalidCall, match="task name"):
            send_task(name)
    assert TaskRecord.objects.count() == 0 and published() == 0


def test_a_refused_call_inside_a_transaction_leaves_it_usable(redis_server):
    with transaction.atomic():
        kept = add.delay(1, 1)
        with pytest.raises(InvalidCall):
            add.delay("\x00")
        also = add.delay(2, 2)
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {kept.id, also.id}
