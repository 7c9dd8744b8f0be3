"""Tasks djtasks itself provides: the bodies of task.map() and task.starmap() (and so of chunks)."""

from __future__ import annotations

from typing import Any

from djtasks.calling.declaration import task
from djtasks.core import registry


@task(name="djtasks.map")
def xmap(task_name: str, items: list[Any]) -> list[Any]:
    """Call a registered task inline on each item; return the results in order."""
    function = registry.lookup(task_name)
    return [function(item) for item in items]  # type: ignore[operator]


@task(name="djtasks.starmap")
def xstarmap(task_name: str, items: list[list[Any]]) -> list[Any]:
    """Call a registered task inline with each item unpacked as its arguments."""
    function = registry.lookup(task_name)
    return [function(*item) for item in items]  # type: ignore[operator]
