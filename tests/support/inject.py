"""Make named functions of a worker subprocess raise, to test that its loops carry on.

A worker started with DJTASKS_TEST_INJECT set (JSON) installs the faults when Django starts
(tests/testapp/apps.py): a list of {"target": "package.module:Class.method", "calls": [n, ...]
or "all", "match": "text" (optional)}. A call of the target raises InjectedFault when it is one
of the listed calls of this process (counted from 1; forked children count afresh from what the
parent had counted), or on every call with "all"; with "match", only calls whose arguments'
repr contains the text count.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

ENV = "DJTASKS_TEST_INJECT"


class InjectedFault(RuntimeError):
    """Raised by a function the test made fail."""


def install_from_environment() -> None:
    spec = os.environ.get(ENV)
    if spec:
        for fault in json.loads(spec):
            install(fault["target"], fault.get("calls", "all"), fault.get("match"))


def install(target: str, calls: list[int] | str, match: str | None) -> None:
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original: Callable[..., Any] = getattr(owner, name)
    seen = {"calls": 0}

    @functools.wraps(original)
    def faulty(*args: Any, **kwargs: Any) -> Any:
        if match is None or match in repr((args, kwargs)):
            seen["calls"] += 1
            if calls == "all" or seen["calls"] in calls:
                raise InjectedFault(f"injected fault in {target} (call {seen['calls']}, pid {os.getpid()})")
        return original(*args, **kwargs)

    setattr(owner, name, faulty)
