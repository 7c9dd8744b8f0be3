"""The registry of declared tasks: the only way a worker finds code to run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from djtasks.core.exceptions import ImproperlyDeclared, NotRegistered
from djtasks.core.names import task_name_error

if TYPE_CHECKING:
    from django.tasks import Task

_tasks: dict[str, Task] = {}


def register(name: str, task: Task) -> None:
    """Register a task under its name; a second function under the same name is an error."""
    if error := task_name_error(name):
        raise ImproperlyDeclared(f"{error}; pass another name=, e.g. @task(name={task.module_path!r}).")
    existing = _tasks.get(name)
    if existing is not None and existing.module_path != task.module_path:
        raise ImproperlyDeclared(
            f"Task name {name!r} is already used by {existing.module_path}; "
            f"{task.module_path} cannot take it too. Pass a distinct name, "
            f"e.g. @task(name={task.module_path!r})."
        )
    if existing is None or existing.func is not task.func:
        _tasks[name] = task


def lookup(name: str) -> Task:
    try:
        return _tasks[name]
    except KeyError:
        raise NotRegistered(name) from None


def names() -> list[str]:
    return sorted(_tasks)


def get(name: str) -> Task | None:
    return _tasks.get(name)
