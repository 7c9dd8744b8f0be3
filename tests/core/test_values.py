"""plain()'s shortcut for flat argument lists gives what its full walk gives, value and error alike."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from djtasks.core import values
from tests.support import strategies


class Number(int):
    pass


class Text(str):
    pass


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(2**2000, 2**6000),
    st.floats(allow_nan=True, allow_infinity=True),
    strategies.texts,
    st.integers(-5, 5).map(Number),
    strategies.texts.map(Text),
    st.sampled_from([b"x", object(), math.inf, [], {}, (), {"a": 1}]),
)


def outcome(function, value):
    try:
        return "ok", function(value, "args")
    except values.Unstorable as exc:
        return "refused", str(exc), exc.wrong_type


@settings(max_examples=300, deadline=None)
@given(st.lists(scalars, max_size=5), st.booleans())
@example(["a\x00"], False)
@example([1, 2**3000], True)
@example([math.nan], False)
@example([Number(1), Text("x")], False)
@example(["\ud800"], True)
def test_a_flat_list_or_tuple_is_copied_as_the_full_walk_copies_it(items, as_tuple):
    value = tuple(items) if as_tuple else items
    fast, full = outcome(values.plain, value), outcome(values._plain, value)
    assert fast == full
    if fast[0] == "ok":
        assert fast[1] is not value and type(fast[1]) is list
        assert [type(x) for x in fast[1]] == [type(x) for x in full[1]]


def test_an_empty_dict_is_a_new_dict_and_a_full_one_takes_the_walk():
    empty = {}
    assert values.plain(empty) == {} and values.plain(empty) is not empty
    with pytest.raises(values.Unstorable, match="not a string"):
        values.plain({1: "a"})
