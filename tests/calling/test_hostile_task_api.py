"""Hostile input at the new boundaries: update_state()'s state and meta, retry_policy, replace() signatures.

Each either does exactly what it was given or raises InvalidCall naming what was wrong, and the
row keeps what it had. The expectations come from tests/support/hostile.py's oracles, written
apart from djtasks' checks.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from djtasks.core.context import Current, activate, deactivate
from djtasks.core.options import ExecutionOptions
from djtasks.exceptions import InvalidCall
from djtasks.models import TaskRecord
from tests.support import hostile, strategies
from tests.testapp.tasks import in_custom_state

pytestmark = [pytest.mark.django_db(transaction=True)]
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("DJTASKS_ATTACK_EXAMPLES", "25")) * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
OUTCOMES = {"SUCCESS", "FAILURE", "REVOKED", "RETRY", "PENDING"}


def good_state(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and not CONTROL.search(value)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        and value not in OUTCOMES
    )


def running_row(attempts: int = 1) -> tuple[TaskRecord, object]:
    """A row held by a made-up attempt, and that attempt made current (as the worker does)."""
    row = TaskRecord.objects.create(
        id=str(uuid.uuid4()),
        task_name=in_custom_state.registered_name,
        attempts=attempts,
        lease_token="token",
        lease_expires_at=timezone.now() + timezone.timedelta(minutes=1),
    )
    running = Current(
        id=row.pk,
        token="token",
        task_name=in_custom_state.registered_name,
        attempt=attempts,
        worker_id="w",
        queue="q",
        db="default",
    )
    return row, activate(running)


@HYPOTHESIS
@given(
    state=st.one_of(strategies.texts, st.sampled_from(sorted(OUTCOMES) + ["PROGRESS", "", "x" * 256])),
    meta=strategies.values,
)
@example(state="PROGRESS", meta={"nested": [{"deep": 1}], "n": 1.5})
@example(state="PROGRESS\n[ERROR] forged", meta=None)
@example(state="PROGRESS", meta={1: "one"})
@example(state="PROGRESS", meta=["a\x00b"])
def test_update_state_stores_exactly_what_it_was_given_or_names_what_it_refused(state, meta):
    row, token = running_row()
    try:
        if good_state(state) and hostile.storable(meta):
            assert in_custom_state.update_state(state=state, meta=meta) is True
            row.refresh_from_db()
            assert row.reported["state"] == state and hostile.same(row.reported["meta"], meta)
            assert row.reported_state is not None and row.reported_state[0] == state
        else:
            with pytest.raises(InvalidCall, match="state|meta"):
                in_custom_state.update_state(state=state, meta=meta)
            row.refresh_from_db()
            assert row.reported is None
    finally:
        deactivate(token)


def test_update_state_of_an_attempt_that_lost_its_lease_writes_nothing():
    row, token = running_row()
    try:
        TaskRecord.objects.filter(pk=row.pk).update(lease_token="a newer attempt")
        assert in_custom_state.update_state(state="PROGRESS", meta={}) is False
        row.refresh_from_db()
        assert row.reported is None
    finally:
        deactivate(token)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6), st.booleans(), st.none())
policies = st.one_of(
    st.dictionaries(
        st.sampled_from(["max_retries", "interval_start", "interval_step", "interval_max", "retry_errors", "tries"]),
        numbers,
        max_size=4,
    ),
    st.sampled_from([[], "fast", 3, None]),
)


@settings(max_examples=200, deadline=None)
@given(retry=st.sampled_from([None, True, False, 1, "yes"]), policy=policies)
def test_a_generated_retry_policy_is_taken_as_given_or_refused_by_name(retry, policy):
    def interval(value: Any) -> bool:
        return (
            not isinstance(value, bool)
            and isinstance(value, int | float)
            and math.isfinite(value)
            and 0 <= value <= 3600
        )

    expected_ok = any(retry is flag for flag in (None, True, False)) and (
        policy is None
        or retry is not False
        and isinstance(policy, dict)
        and "tries" not in policy
        and policy.get("retry_errors") is None
        and (type(policy.get("max_retries", 3)) is int and 0 <= policy.get("max_retries", 3) <= 100)
        and all(interval(policy.get(k, 0)) for k in ("interval_start", "interval_step", "interval_max"))
    )
    if not expected_ok:
        with pytest.raises(InvalidCall, match="retry"):
            ExecutionOptions.build(retry=retry, retry_policy=policy)
        return
    built = ExecutionOptions.build(retry=retry, retry_policy=policy).publish_retry
    if retry is not True and policy is None:
        assert built is None
        return
    assert built is not None
    policy = policy or {}
    assert built.max_retries == policy.get("max_retries", 3)
    assert len(built.delays()) == built.max_retries
    assert all(0 <= d <= built.interval_max for d in built.delays())
