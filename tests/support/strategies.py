"""Hypothesis strategies of hostile values (tests/support/hostile.py describes them as recipes)."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.support import hostile

# Printable ASCII most of the time; NUL, controls, surrogates (lone or paired), separators, emoji often.
code_points = st.one_of(
    st.integers(0x20, 0x7E),
    st.sampled_from([0, 9, 10, 13, 0x1B, 0x85, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x2028, 0x202E, 0x1F600]),
    st.integers(0, 0x10FFFF),
)
text_recipes = st.lists(code_points, max_size=12).map(lambda cps: {"s": cps})
texts = st.lists(code_points, max_size=12).map(lambda cps: "".join(map(chr, cps)))

scalar_recipes = st.one_of(
    text_recipes,
    st.integers(-(2**70), 2**70).map(lambda i: {"i": str(i)}),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: {"f": repr(f)}),
    st.booleans().map(lambda b: {"b": b}),
    st.just({"n": None}),
    st.sampled_from([{"deep": 20}, {"deep": 150}, {"big": [300_000, 120]}, {"big": [1000, 0]}]),
    st.sampled_from(sorted(hostile.OBJECTS)).map(lambda name: {"o": name}),
)
key_recipes = st.one_of(
    text_recipes,
    st.integers(-5, 5).map(lambda i: {"i": str(i)}),
    st.just({"b": True}),
    st.just({"n": None}),
    st.just({"t": []}),
)
recipes = st.recursive(
    scalar_recipes,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: {"l": items}),
        st.lists(inner, max_size=3).map(lambda items: {"t": items}),
        st.lists(st.tuples(key_recipes, inner), max_size=4).map(lambda pairs: {"d": [list(p) for p in pairs]}),
    ),
    max_leaves=8,
)
values = recipes.map(hostile.build)
