"""Unique, debounce, keyed rate-limit and concurrency options are checked when the task is declared."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks import task
from djtasks.calling import gates
from djtasks.exceptions import ImproperlyDeclared, InvalidCall

WHERE = "on tests.calling.test_gates.target"


def target(customer_id, invoice_id=0, **extra):
    return customer_id


def narrow(customer_id, invoice_id):
    return customer_id


def bound(self, customer_id):
    return customer_id


def declare(**options):
    return task(name=f"tests.gates.{abs(hash(repr(sorted(options.items()))))}", **options)(target)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"unique_for": 0},
            f"unique_for must be a positive number of seconds or a timedelta (at most ten years), not 0 {WHERE}.",
        ),
        (
            {"unique_for": -1.5},
            "unique_for must be a positive number of seconds or a timedelta (at most ten years), not -1.5",
        ),
        ({"unique_for": float("inf")}, "not inf"),
        ({"unique_for": "60"}, "not '60'"),
        ({"unique_for": True}, "not True"),
        ({"unique_for": timedelta(0)}, "not datetime.timedelta(0)"),
        ({"unique_for": 11 * 365 * 86400}, "(at most ten years)"),
        ({"debounce": -1}, "debounce must be a positive number of seconds or a timedelta"),
        ({"unique_for": 60, "debounce": 5}, f"unique_for and debounce cannot be combined {WHERE}: a debounced task"),
        (
            {"unique_key": "{customer_id}"},
            f"unique_key needs unique_for= or debounce= {WHERE} (a call may still pass its own).",
        ),
        (
            {"unique_for": 60, "unique_key": 42},
            "unique_key must be a function of the task's arguments or a template such as '{customer_id}', not 42",
        ),
        ({"unique_for": 60, "unique_key": "customer"}, "unique_key 'customer' names no argument"),
        ({"unique_for": 60, "unique_key": "{0}"}, "unique_key '{0}' must name arguments, not positions"),
        ({"unique_for": 60, "unique_key": "{}"}, "must name arguments, not positions"),
        ({"unique_for": 60, "unique_key": "{customer"}, "unique_key '{customer' is not a valid template"),
        ({"rate_limit_key": "{customer_id}"}, f"rate_limit_key needs a rate_limit such as '10/m' {WHERE}."),
        (
            {"concurrency": 0},
            "concurrency must be a whole number from 1 to 10000 (tasks running at once across all workers), not 0",
        ),
        ({"concurrency": 2.0}, "not 2.0"),
        ({"concurrency": True}, "not True"),
        ({"concurrency": 10_001}, "not 10001"),
        (
            {"concurrency_key": "{customer_id}"},
            f"concurrency_key needs concurrency= (how many may run at once per key) {WHERE}.",
        ),
        ({"concurrency": 1, "concurrency_key": []}, "concurrency_key must be a function"),
    ],
)
def test_a_wrong_option_fails_the_declaration_with_what_to_change(options, message):
    with pytest.raises(ImproperlyDeclared) as refused:
        declare(**options)
    assert message in str(refused.value)


def test_a_template_naming_no_argument_lists_the_arguments():
    with pytest.raises(ImproperlyDeclared) as refused:
        task(name="tests.gates.narrow", rate_limit="1/s", rate_limit_key="{customer}")(narrow)
    assert "names 'customer', which is not an argument of the task" in str(refused.value)
    assert "its arguments are: customer_id, invoice_id." in str(refused.value)


def test_a_bound_tasks_self_is_not_one_of_its_arguments():
    with pytest.raises(ImproperlyDeclared, match="its arguments are: customer_id"):
        task(name="tests.gates.bound", bind=True, concurrency=1, concurrency_key="{self}")(bound)
    declared = task(name="tests.gates.bound2", bind=True, concurrency=1, concurrency_key="{customer_id}")(bound)
    assert gates.START[declared.registered_name].concurrency_key(["acme"], {}) == "acme"


def test_good_options_make_a_gate_and_plain_tasks_none():
    plain = task(name="tests.gates.plain")(target)
    assert plain.registered_name not in gates.ENQUEUE and plain.registered_name not in gates.START
    unique = declare(unique_for=timedelta(minutes=1))
    assert gates.ENQUEUE[unique.registered_name].unique_for == 60.0 and unique.registered_name not in gates.START
    capped = declare(concurrency=3)
    name = capped.registered_name
    assert name in gates.START and name not in gates.ENQUEUE  # nothing to compute at enqueue
    keyed = declare(rate_limit="5/s", rate_limit_key=lambda customer_id, **kw: f"c{customer_id}")
    assert keyed.registered_name in gates.START and keyed.registered_name in gates.ENQUEUE


def test_keys_bind_the_call_as_the_task_would():
    function = gates.key_function("rate_limit_key", lambda customer_id, **kw: customer_id, target, 0, "")
    template = gates.key_function("rate_limit_key", "{customer_id}/{invoice_id}/{extra[note]}", target, 0, "")
    assert function is not None and template is not None
    assert function(["acme"], {}) == function([], {"customer_id": "acme"}) == "acme"
    assert template(["acme", 7], {"extra": {"note": "n"}}) == "acme/7/n"
    assert template([], {"customer_id": "x", "extra": {"note": 1}}) == "x/0/1"
    with pytest.raises(InvalidCall, match="cannot be computed for this call: KeyError"):
        template.compute("t", ["acme"], {})
    with pytest.raises(InvalidCall, match="cannot be computed for this call: TypeError"):
        function.compute("t", [], {"nobody": 1})


def test_a_key_function_returning_what_is_not_a_key_is_refused():
    for returned, message in ((None, "not NoneType"), ("", "not ''"), (1.5, "not float"), (False, "not bool")):
        function = gates.key_function("concurrency_key", lambda customer_id, value=returned, **kw: value, target, 0, "")
        assert function is not None
        with pytest.raises(InvalidCall, match=message):
            function.compute("t", [1], {})


def test_a_base_exception_of_a_key_function_is_not_swallowed():
    def exits(customer_id, **kw):
        raise SystemExit(3)

    function = gates.key_function("unique_key", exits, target, 0, "")
    assert function is not None
    with pytest.raises(SystemExit):
        function.compute("t", [1], {})


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(min_size=1, max_size=300), st.integers()))
def test_every_string_or_integer_is_a_key_that_any_store_holds(value):
    text = gates.key_text(value, "unique_key")
    assert text == gates.key_text(value, "unique_key")  # the same key every time
    assert 0 < len(text) <= gates.KEY_TEXT_LIMIT and text.isprintable()
    if isinstance(value, str) and len(value) <= gates.KEY_TEXT_LIMIT and value.isprintable():
        assert text == value
    elif isinstance(value, int):
        assert text == str(value)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=50), st.text(min_size=1, max_size=50))
def test_distinct_keys_make_distinct_locks(a, b):
    assert (gates.lock_digest("t", "unique", a) == gates.lock_digest("t", "unique", b)) == (a == b)
    assert gates.lock_digest("t", "unique", a) != gates.lock_digest("t", "debounce", a)
    assert gates.lock_digest("t", "unique", a) != gates.lock_digest("u", "unique", a)
