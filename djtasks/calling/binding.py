"""The typing check of a call (Celery's typing=True): can the task's function take these arguments?

inspect.Signature.bind() answers, at about 6 µs a call. Most task functions take plain
parameters (no positional-only or keyword-only ones), for which a plan read once from the
signature answers "yes" without binding; any other answer, and any other function, goes to
bind(), whose error is the message.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

from djtasks.calling.taskoptions import signature_of
from djtasks.core.exceptions import InvalidCall

_PLAIN = inspect.Parameter.POSITIONAL_OR_KEYWORD


class Plan(NamedTuple):
    """A signature of plain parameters, then optionally *args and **kwargs."""

    names: tuple[str, ...]  # the plain parameters, in order
    positions: dict[str, int]  # where each one is
    required: int  # how many of the first take no default (all defaulted ones follow them)
    var_positional: bool
    var_keyword: bool


@cache
def plan_of(func: Callable[..., Any]) -> Plan | None:
    """The plan of func's signature, or None if it has positional-only or keyword-only parameters."""
    try:
        parameters = list(signature_of(func).parameters.values())
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    required = 0
    var_positional = var_keyword = False
    for parameter in parameters:
        if parameter.kind is _PLAIN and not var_positional:
            names.append(parameter.name)
            if parameter.default is inspect.Parameter.empty:
                if required != len(names) - 1:  # a required one after a defaulted one: not a Python signature
                    return None
                required += 1
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            var_positional = True
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        else:
            return None
    return Plan(tuple(names), {name: i for i, name in enumerate(names)}, required, var_positional, var_keyword)


def fits(plan: Plan, positional: int, kwargs: dict[str, Any]) -> bool:
    """Whether bind() surely takes `positional` positional arguments and these keyword ones."""
    names, positions = plan.names, plan.positions
    if positional > len(names) and not plan.var_positional:
        return False
    for key in kwargs:
        at = positions.get(key)
        if at is None:
            if not plan.var_keyword:
                return False
        elif at < positional:  # given twice
            return False
    return all(name in kwargs for name in names[positional : plan.required])


def check_arguments(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise InvalidCall if the task's function cannot take these arguments (after self and the context)."""
    func = task.func
    prefix = int(bool(task.bind)) + int(bool(task.takes_context))
    plan = plan_of(func)
    if plan is not None and fits(plan, prefix + len(args), kwargs):
        return
    signature = signature_of(func)
    try:
        signature.bind(*[None] * prefix, *args, **kwargs)
    except TypeError as exc:
        message = f"{task.registered_name}{signature} cannot take these arguments: {exc}. Nothing was enqueued."
        raise InvalidCall(message) from None
