"""The canvas' base: what every primitive offers (Canvas), the signature of one task call, and the JSON form.

The primitives that compose signatures (chain, group, chord) are in canvas.py; each declares its
`kind`, the subtask_type of its JSON form, by which from_dict() rebuilds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from django.db import router

from djtasks.calling.bulk import bulk
from djtasks.calling.result import AsyncResult
from djtasks.calling.send import send_task
from djtasks.core import registry
from djtasks.record.models import TaskRecord


def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Canvas):
            value = value.as_dict()
        elif isinstance(value, list | tuple):
            value = [v.as_dict() if isinstance(v, Canvas) else v for v in value]
        out[key] = value
    return out


class Canvas:
    """What every primitive offers: Celery's calling API, callbacks, and how a workflow applies it."""

    kind: ClassVar[str] = ""  # the subtask_type of the JSON form ("" for a signature)
    kinds: ClassVar[dict[str, type[Canvas]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Canvas.kinds[cls.kind] = cls

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Canvas:
        raise NotImplementedError

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Start the workflow (a copy of it: calling one twice starts it twice) in one transaction (bulk())."""
        node = from_dict(self.as_dict())
        result = node.freeze()
        with bulk(using=router.db_for_write(TaskRecord)):  # one transaction, multi-row INSERTs, one publish
            node.run(tuple(args or ()), dict(kwargs or {}), options)
        return result

    def __invert__(self) -> Any:
        """~sig: start it and wait for its result, as Celery's shell shortcut."""
        return self.apply_async().get()

    def link(self, callback: Any) -> Any:
        """Call back with the result when this succeeds (on the tasks whose results it returns)."""
        for sig in self.terminals():
            sig.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Call errback with the failed task's id if any task of this fails."""
        for sig in self.errback_targets():
            sig.options.setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Any) -> Canvas:
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Any:
        return Canvas.kinds["chain"](self, other)  # type: ignore[call-arg]

    # What subclasses define: the JSON form, ids, how they run, and which tasks complete them.
    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def freeze(self, _id: str | None = None, parent: Any = None) -> Any:
        """Allocate the ids now, so results can be handed out before anything runs."""
        raise NotImplementedError

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        """Start a frozen workflow in the current transaction (options: call options and its place in a workflow)."""
        raise NotImplementedError

    def apply(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Run it here and now with Task.apply(): eager results, nothing enqueued."""
        raise NotImplementedError

    def terminals(self) -> list[Signature]:
        """The tasks whose outcomes are this workflow's result (a chord counts them)."""
        raise NotImplementedError

    def layout(self) -> Layout:
        """The ids of terminals(), nested as this workflow's result is."""
        raise NotImplementedError

    def signatures(self) -> list[Signature]:
        """Every task of this workflow, outside what follows it."""
        raise NotImplementedError

    def entries(self) -> list[Signature]:
        """The tasks that run first."""
        raise NotImplementedError

    def errback_targets(self) -> list[Signature]:
        return self.signatures()


class Signature(Canvas):
    """A task name with partial arguments and options: called later, or by a workflow step."""

    def __init__(
        self,
        task: Any,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        *,
        immutable: bool = False,
    ):
        self.task: str = getattr(task, "registered_name", task)
        self.args = tuple(args or ())
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.immutable = immutable

    def __repr__(self) -> str:
        arguments = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(arguments)}){'!' if self.immutable else ''}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and other.as_dict() == self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": _json_options(self.options),
            "immutable": self.immutable,
        }

    def clone(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Signature:
        """A copy with args prepended and kwargs and options merged (the later winning)."""
        if self.immutable:
            args, kwargs = (), None
        return Signature(
            self.task,
            (*tuple(args), *self.args),
            {**self.kwargs, **(kwargs or {})},
            {**self.options, **options},
            immutable=self.immutable,
        )

    signature = clone  # Celery's alias

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Merge execution options into this signature (the later winning); return it."""
        if immutable is not None:
            self.immutable = immutable
        self.options.update(options)
        return self

    def freeze(self, _id: str | None = None, parent: Any = None) -> AsyncResult:
        self.options.setdefault("task_id", _id or str(uuid.uuid4()))
        return AsyncResult(self.options["task_id"], task_name=self.task, parent=parent)

    @property
    def id(self) -> str | None:
        return self.options.get("task_id")

    def apply_async(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Enqueue with the partial arguments completed by args/kwargs and options merged."""
        return self.run(tuple(args or ()), dict(kwargs or {}), options)

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        merged = self.clone(args, kwargs, **options)
        task = registry.get(merged.task)
        if task is not None and hasattr(task, "apply_async"):
            return task.apply_async(merged.args, merged.kwargs, **merged.options)
        return send_task(merged.task, merged.args, merged.kwargs, **merged.options)

    def apply(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Run it here and now (Task.apply()): an eager result, nothing enqueued."""
        merged = self.clone(args, kwargs, **options)
        return registry.lookup(merged.task).apply(merged.args, merged.kwargs, **merged.options)  # type: ignore[attr-defined]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run inline in this process with the partial arguments completed."""
        merged = self.clone(args, kwargs)
        return registry.lookup(merged.task)(*merged.args, **merged.kwargs)  # type: ignore[operator]

    def terminals(self) -> list[Signature]:
        return [self]

    def layout(self) -> Layout:
        return self.options["task_id"]

    def signatures(self) -> list[Signature]:
        return [self]

    def entries(self) -> list[Signature]:
        return [self]


def signature(value: Any, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
    """Build a signature from a task, a task name or a dict (as stored in a workflow)."""
    if isinstance(value, Canvas):
        return value
    if isinstance(value, dict):
        return from_dict(value)
    return Signature(value, args, kwargs, options, immutable=options.pop("immutable", False))


def from_dict(data: dict[str, Any]) -> Any:
    """Rebuild a workflow from its as_dict() form."""
    kind = data.get("subtask_type")
    if kind:
        return Canvas.kinds[kind].from_json(data)
    return Signature(
        data["task"],
        data.get("args", ()),
        data.get("kwargs"),
        data.get("options"),
        immutable=bool(data.get("immutable")),
    )


Layout = str | list[Any]  # where each counted task's result goes in a chord callback's argument


def flatten(layout: Layout) -> list[str]:
    """The ids of a layout, in order."""
    return [layout] if isinstance(layout, str) else [i for node in layout for i in flatten(node)]
