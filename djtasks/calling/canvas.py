"""Celery's canvas: signature, chain, group and chord, nested to any depth, serializable as JSON.

Composition follows Celery 5: `a | b` is a chain; in a chain, a group followed by anything is a
chord and a group of one is its member; `chord | task` continues after the chord's callback;
groups directly inside a group or a chord header are unrolled into it. Applying a workflow writes
the rows it starts now in one transaction; what follows a task is stored in its row (the canvas
field) and a chord's counter is a row (worker/workflow.py counts). map, starmap, chunks: chunks.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import router

from djtasks.calling.groups import GroupResult
from djtasks.calling.signature import Canvas, Layout, Signature, flatten, from_dict, signature
from djtasks.record.models import Chord

__all__ = ["Canvas", "Signature", "chain", "chord", "from_dict", "group", "signature"]


def _is_step(value: Any) -> bool:
    return isinstance(value, Canvas | dict) or hasattr(value, "registered_name")


def _items(tasks: tuple[Any, ...]) -> Any:
    return tasks[0] if len(tasks) == 1 and not _is_step(tasks[0]) else tasks


def _append(steps: list[Canvas], node: Canvas) -> None:
    """Add a step to a chain as Celery 5 composes them."""
    if isinstance(node, chain):
        for step in node.tasks:
            _append(steps, step)
        return
    if isinstance(node, group) and len(node.tasks) == 1:
        node = node.tasks[0]  # a group of one is its member
        _append(steps, node)
        return
    if steps and type(steps[-1]) is group:
        steps[-1] = chord(steps[-1], node)  # a group followed by anything is a chord
    else:
        steps.append(node)


class chain(Canvas):  # noqa: N801 - Celery's name
    """Run tasks one after another, each receiving the previous result (unless immutable)."""

    kind = "chain"

    def __init__(self, *tasks: Any):
        steps: list[Canvas] = []
        for item in _items(tasks):
            _append(steps, signature(item))
        if not steps:
            raise ValueError("A chain needs at least one task.")
        self.tasks = steps

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> chain:
        return cls(*[from_dict(d) for d in data["tasks"]])

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_type": "chain", "tasks": [t.as_dict() for t in self.tasks]}

    def freeze(self, _id: str | None = None, parent: Any = None) -> Any:
        result = parent
        for position, step in enumerate(self.tasks):
            result = step.freeze(_id if position == len(self.tasks) - 1 else None, parent=result)
        return result

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        options = dict(options)
        # As in Celery: link follows the last step, link_error watches every step.
        if (callback := options.pop("link", None)) is not None:
            for cb in callback if isinstance(callback, list | tuple) else [callback]:
                self.tasks[-1].link(cb)
        if (errback := options.pop("link_error", None)) is not None:
            for eb in errback if isinstance(errback, list | tuple) else [errback]:
                self.link_error(eb)
        steps = [*self.tasks, *(from_dict(d) for d in options.pop("chain", None) or [])]
        root_id = options.pop("root_id", "") or self.entries()[0].id or ""
        rest = [step.as_dict() for step in steps[1:]]
        return steps[0].run(args, kwargs, {**options, "chain": rest, "root_id": root_id})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Run every step here and now, each with the previous step's value (Task.apply())."""
        last: Any = None
        for step in self.tasks:
            if last is None:
                result = step.apply(args, kwargs, **options)
            else:
                result = step.apply((last.get(),), **options)
            result.parent, last = last, result
        return last

    def terminals(self) -> list[Signature]:
        return self.tasks[-1].terminals()

    def layout(self) -> Layout:
        return self.tasks[-1].layout()

    def signatures(self) -> list[Signature]:
        return [sig for step in self.tasks for sig in step.signatures()]

    def entries(self) -> list[Signature]:
        return self.tasks[0].entries()

    def errback_targets(self) -> list[Signature]:
        return [sig for step in self.tasks for sig in step.errback_targets()]


class group(Canvas):  # noqa: N801 - Celery's name
    """Run workflows in parallel; GroupResult.get() returns their results in order."""

    kind = "group"

    def __init__(self, *tasks: Any, group_id: str | None = None):
        self.tasks: list[Canvas] = [signature(t) for t in _items(tasks)]
        self.group_id = group_id

    def members(self) -> list[Canvas]:
        """The members, with groups directly inside unrolled (as Celery does)."""
        return [m for task in self.tasks for m in (task.members() if isinstance(task, group) else [task])]

    def __or__(self, other: Any) -> Any:
        return chord(self, other)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> group:
        return cls([from_dict(d) for d in data["tasks"]], group_id=data.get("group_id"))

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_type": "group", "tasks": [t.as_dict() for t in self.tasks], "group_id": self.group_id}

    def freeze(self, _id: str | None = None, parent: Any = None) -> GroupResult:
        self.group_id = self.group_id or _id or str(uuid.uuid4())
        result = GroupResult(self.group_id, [member.freeze(parent=parent) for member in self.members()])
        result.parent = parent
        return result

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        if options.get("link") or options.get("link_error"):
            raise TypeError("A group takes no link or link_error: use a chord, or group.link() for each member.")
        if options.get("chain"):
            raise ValueError("Nothing follows a group in a chain: it becomes a chord.")
        options = {key: value for key, value in options.items() if key != "chain"}
        for member in self.members():
            member.run(args, kwargs, {**options, "group_id": self.group_id})

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.apply_async(args, **options)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Give the members countdowns start, start + step, ... (at most stop), as Celery's skew()."""
        for index, member in enumerate(self.members()):
            countdown = start + index * step
            for sig in member.entries():
                sig.set(countdown=min(countdown, stop) if stop is not None else countdown)
        return self

    def apply(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> GroupResult:
        """Run every member here and now (Task.apply())."""
        results = [member.apply(args, kwargs, **options) for member in self.members()]
        return GroupResult(self.group_id or str(uuid.uuid4()), results)

    def terminals(self) -> list[Signature]:
        return [sig for member in self.members() for sig in member.terminals()]

    def layout(self) -> Layout:
        return [member.layout() for member in self.members()]

    def signatures(self) -> list[Signature]:
        return [sig for member in self.members() for sig in member.signatures()]

    def entries(self) -> list[Signature]:
        return [sig for member in self.members() for sig in member.entries()]


class chord(Canvas):  # noqa: N801 - Celery's name
    """A group whose results, in order, are passed to a callback that runs exactly once."""

    kind = "chord"

    def __init__(self, header: Any, body: Any = None):
        self.header = header if isinstance(header, group) else group(header)
        self.body: Canvas | None = signature(body) if body is not None else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> chord:
        return cls(from_dict(data["header"]), from_dict(data["body"]))

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_type": "chord", "header": self.header.as_dict(), "body": self._body().as_dict()}

    def _body(self) -> Canvas:
        if self.body is None:
            raise TypeError("A chord needs a callback: chord(header, body) or chord(header)(body).")
        return self.body

    def freeze(self, _id: str | None = None, parent: Any = None) -> Any:
        return self._body().freeze(_id, parent=self.header.freeze(parent=parent))

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        options = dict(options)
        body = self._body()
        for key, add in (("link", body.link), ("link_error", body.link_error)):
            if (value := options.pop(key, None)) is not None:
                for sig in value if isinstance(value, list | tuple) else [value]:
                    add(sig)
        rest = [from_dict(d) for d in options.pop("chain", None) or []]
        callback = chain(body, *rest) if rest else body  # what follows the chord follows its callback
        if group_id := options.pop("group_id", ""):
            for sig in callback.entries():
                sig.set(group_id=group_id)
        members, chord_id = self.header.members(), str(self.header.group_id)  # frozen: set
        if not members:
            return callback.run(([],), {}, {"root_id": options.get("root_id", "")})
        for member in members:  # a member counts when the tasks that make its result are done
            for sig in member.terminals():
                sig.set(chord=chord_id)
        layout = [member.layout() for member in members]
        Chord.objects.using(router.db_for_write(Chord)).create(
            id=chord_id, member_ids=flatten(layout), layout=layout, callback=callback.as_dict()
        )
        for member in members:
            member.run(args, kwargs, {**options, "group_id": chord_id})

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None and self.body is None:
            return chord(self.header, body).apply_async(**options)
        return self.apply_async(**options)

    def apply(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Run the header, then the callback with its values, here and now (Task.apply())."""
        propagate = options.pop("propagate", True)
        values = self.header.apply(args, kwargs).get(propagate=propagate)
        return self._body().apply((values,), **options)

    def terminals(self) -> list[Signature]:
        return self._body().terminals()

    def layout(self) -> Layout:
        return self._body().layout()

    def signatures(self) -> list[Signature]:
        return [*self.header.signatures(), *self._body().signatures()]

    def entries(self) -> list[Signature]:
        return self.header.entries()

    def errback_targets(self) -> list[Signature]:
        return self._body().errback_targets()
