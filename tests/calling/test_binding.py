"""The typing check's fast plan answers as inspect.Signature.bind() does, for any signature and any call."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks.calling import binding
from djtasks.core.exceptions import InvalidCall

P = inspect.Parameter
NAMES = ["a", "b", "c", "d", "e", "f", "args", "kw"]


@st.composite
def signatures(draw: Any) -> inspect.Signature:
    names = iter(draw(st.permutations(NAMES)))
    parameters: list[inspect.Parameter] = []
    defaulted = False
    for kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
        for _ in range(draw(st.integers(0, 2 if kind is P.POSITIONAL_ONLY else 3))):
            defaulted = defaulted or draw(st.booleans())
            parameters.append(P(next(names), kind, default=0 if defaulted else P.empty))
    if draw(st.booleans()):
        parameters.append(P(next(names), P.VAR_POSITIONAL))
    for _ in range(draw(st.integers(0, 1))):
        parameters.append(P(next(names), P.KEYWORD_ONLY, default=draw(st.sampled_from([0, P.empty]))))
    if draw(st.booleans()):
        parameters.append(P(next(names), P.VAR_KEYWORD))
    return inspect.Signature(parameters)


def declared(signature: inspect.Signature, bind: bool, takes_context: bool) -> Any:
    def func(*args: Any, **kwargs: Any) -> None:
        pass

    # self and the context: plain parameters, as in def f(self, x), unless positional-only ones follow.
    kinds = {p.kind for p in signature.parameters.values()}
    kind = P.POSITIONAL_ONLY if P.POSITIONAL_ONLY in kinds else P.POSITIONAL_OR_KEYWORD
    prefix = [P(f"_p{i}", kind) for i in range(int(bind) + int(takes_context))]
    func.__signature__ = signature.replace(parameters=[*prefix, *signature.parameters.values()])  # type: ignore[attr-defined]
    return SimpleNamespace(func=func, bind=bind, takes_context=takes_context, registered_name="t.f")


@settings(max_examples=400, deadline=None)
@given(
    signatures(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 5),
    st.lists(st.sampled_from([*NAMES, "zz", "_p0"]), unique=True, max_size=4),
)
def test_the_check_refuses_exactly_the_calls_bind_refuses_with_bind_s_message(
    signature, bind, takes_context, positional, keywords
):
    task = declared(signature, bind, takes_context)
    args, kwargs = list(range(positional)), dict.fromkeys(keywords, 1)
    full = inspect.signature(task.func)
    try:
        full.bind(*[None] * (int(bind) + int(takes_context)), *args, **kwargs)
    except TypeError as exc:
        expected = f"t.f{full} cannot take these arguments: {exc}. Nothing was enqueued."
        with pytest.raises(InvalidCall) as info:
            binding.check_arguments(task, args, kwargs)
        assert str(info.value) == expected
    else:
        binding.check_arguments(task, args, kwargs)


@settings(max_examples=200, deadline=None)
@given(signatures(), st.integers(0, 5), st.lists(st.sampled_from([*NAMES, "zz"]), unique=True, max_size=4))
def test_the_plan_says_yes_only_to_calls_bind_takes(signature, positional, keywords):
    def func(*args: Any, **kwargs: Any) -> None:
        pass

    func.__signature__ = signature  # type: ignore[attr-defined]
    plan = binding.plan_of(func)
    kinds = {p.kind for p in signature.parameters.values()}
    assert (plan is None) == bool(kinds & {P.POSITIONAL_ONLY, P.KEYWORD_ONLY})
    if plan is not None and binding.fits(plan, positional, dict.fromkeys(keywords, 1)):
        signature.bind(*range(positional), **dict.fromkeys(keywords, 1))
