"""task.map(), task.starmap() and task.chunks(): one task, or a group of them, over many items."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from djtasks.calling.canvas import Signature, group
from djtasks.calling.groups import GroupResult


def map_signature(task_name: str, items: Iterable[Any]) -> Signature:
    """Return the signature of djtasks.map calling the task on each item."""
    return Signature("djtasks.map", (task_name, list(items)))


def starmap_signature(task_name: str, items: Iterable[Any]) -> Signature:
    """Return the signature of djtasks.starmap calling the task with each item unpacked."""
    return Signature("djtasks.starmap", (task_name, [list(item) for item in items]))


class Chunks:
    """Celery's task.chunks(items, n): a group of starmap tasks over chunks of n items."""

    def __init__(self, task_name: str, items: Iterable[Any], n: int):
        if type(n) is not int or n < 1:
            raise ValueError("chunks() needs a chunk size n >= 1.")
        self.task_name, self.items, self.n = (
            getattr(task_name, "registered_name", task_name),
            [list(i) for i in items],
            n,
        )

    def group(self) -> group:
        iterator = iter(self.items)
        parts = iter(lambda: list(islice(iterator, self.n)), [])
        return group([starmap_signature(self.task_name, part) for part in parts])

    def apply_async(self, **options: Any) -> GroupResult:
        return self.group().apply_async(**options)

    def __call__(self, **options: Any) -> GroupResult:
        return self.apply_async(**options)

    delay = __call__
