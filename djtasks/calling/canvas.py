"""Celery's canvas: signature, chain, group and chord, serializable as JSON (map and chunks: chunks.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import router, transaction

from djtasks.calling.result import AsyncResult, GroupResult
from djtasks.calling.send import send_task
from djtasks.core import registry
from djtasks.record.models import Chord, TaskRecord


def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Signature | chain | group):
            value = value.as_dict()
        elif isinstance(value, list | tuple):
            value = [v.as_dict() if isinstance(v, Signature | chain | group) else v for v in value]
        out[key] = value
    return out


class Signature:
    """A task name with partial arguments and options: called later, or by a workflow step."""

    def __init__(
        self,
        task: str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        *,
        immutable: bool = False,
    ):
        self.task = getattr(task, "registered_name", task)
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

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Merge execution options into this signature (the later winning); return it."""
        if immutable is not None:
            self.immutable = immutable
        self.options.update(options)
        return self

    def freeze(self) -> AsyncResult:
        """Allocate this invocation's id now, so results can be handed out before it runs."""
        self.options.setdefault("task_id", str(uuid.uuid4()))
        return AsyncResult(self.options["task_id"], task_name=self.task)

    def apply_async(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """Enqueue with the partial arguments completed by args/kwargs and options merged."""
        merged = self.clone(args, kwargs, **options)
        task = registry.get(merged.task)
        if task is not None and hasattr(task, "apply_async"):
            return task.apply_async(merged.args, merged.kwargs, **merged.options)
        return send_task(merged.task, merged.args, merged.kwargs, **merged.options)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run inline in this process with the partial arguments completed."""
        merged = self.clone(args, kwargs)
        return registry.lookup(merged.task)(*merged.args, **merged.kwargs)  # type: ignore[operator]

    def __or__(self, other: Any) -> chain:
        return chain(self, other)

    signature = clone  # Celery's alias


def signature(value: Any, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
    """Build a signature from a task, a task name or a dict (as stored in a workflow)."""
    if isinstance(value, Signature | chain | group):
        return value
    if isinstance(value, dict):
        return from_dict(value)
    return Signature(value, args, kwargs, options, immutable=options.pop("immutable", False))


def from_dict(data: dict[str, Any]) -> Any:
    kind = data.get("subtask_type")
    if kind == "chain":
        return chain(*[from_dict(d) for d in data["tasks"]])
    if kind == "group":
        return group([from_dict(d) for d in data["tasks"]], group_id=data.get("group_id"))
    if kind == "chord":
        return chord(from_dict(data["header"]), from_dict(data["body"]))
    return Signature(
        data["task"],
        data.get("args", ()),
        data.get("kwargs"),
        data.get("options"),
        immutable=bool(data.get("immutable")),
    )


class chain:  # noqa: N801 - Celery's name
    """Run tasks one after another, each receiving the previous result (unless immutable)."""

    def __init__(self, *tasks: Any):
        steps: list[Any] = []
        for item in tasks[0] if len(tasks) == 1 and not _is_step(tasks[0]) else tasks:
            steps.extend(item.tasks if isinstance(item, chain) else [signature(item)])  # type: ignore[has-type]
        if not steps:
            raise ValueError("A chain needs at least one task.")
        # A group followed by a task is a chord, as in Celery.
        merged: list[Any] = []
        for step in steps:
            if merged and type(merged[-1]) is group:
                merged[-1] = chord(merged[-1], step)
            else:
                merged.append(step)
        self.tasks = merged

    def __or__(self, other: Any) -> chain:
        return chain(self, other)

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_type": "chain", "tasks": [t.as_dict() for t in self.tasks]}

    def freeze(self) -> AsyncResult:
        parent = None
        for step in self.tasks:
            result = step.freeze()
            if isinstance(result, AsyncResult) and parent is not None and result.parent is None:
                result.parent = parent
            parent = result
        return parent  # type: ignore[return-value]

    def apply_async(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        result = self.freeze()
        # As in Celery: link follows the last step, link_error watches every step.
        links = {key: options.pop(key) for key in ("link", "link_error") if key in options}
        for position, step in enumerate(self.tasks):
            target = step.body if isinstance(step, chord) else step
            if isinstance(target, Signature):
                if "link_error" in links:
                    target.set(link_error=links["link_error"])
                if "link" in links and position == len(self.tasks) - 1:
                    target.set(link=links["link"])
        first, rest = self.tasks[0], self.tasks[1:]
        root_id = options.pop("root_id", "") or _result_id(first)
        db = router.db_for_write(TaskRecord)
        with transaction.atomic(using=db):
            first.apply_async(args, kwargs, chain=[step.as_dict() for step in rest], root_id=root_id, **options)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    __call__ = delay


def _is_step(value: Any) -> bool:
    return isinstance(value, Signature | chain | group | dict) or hasattr(value, "registered_name")


def _result_id(step: Any) -> str:
    if isinstance(step, chord):
        return step.body.options.get("task_id", "")  # type: ignore[union-attr]
    if isinstance(step, Signature):
        return step.options.get("task_id", "")
    return ""


class group:  # noqa: N801 - Celery's name
    """Run signatures in parallel; GroupResult.get() returns their results in order."""

    def __init__(self, *tasks: Any, group_id: str | None = None):
        items = tasks[0] if len(tasks) == 1 and not _is_step(tasks[0]) else tasks
        self.tasks = [signature(t) for t in items]
        for member in self.tasks:
            if not isinstance(member, Signature):
                raise TypeError(f"A group's members must be task signatures, not {type(member).__name__}.")
        self.group_id = group_id

    def __or__(self, other: Any) -> Any:
        return chord(self, other)

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_type": "group", "tasks": [t.as_dict() for t in self.tasks], "group_id": self.group_id}

    def freeze(self) -> GroupResult:
        self.group_id = self.group_id or str(uuid.uuid4())
        return GroupResult(self.group_id, [member.freeze() for member in self.tasks])

    def apply_async(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        result = self.freeze()
        options.pop("chain", None)  # a chain never continues after a bare group (it became a chord)
        with transaction.atomic(using=router.db_for_write(TaskRecord)):
            for member in self.tasks:
                member.apply_async(args, kwargs, group_id=self.group_id, **options)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    __call__ = delay


class chord:  # noqa: N801 - Celery's name
    """A group whose results, in order, are passed to a callback that runs exactly once."""

    def __init__(self, header: Any, body: Any = None):
        self.header = header if isinstance(header, group) else group(header)
        self.body = signature(body) if body is not None else None

    def __or__(self, other: Any) -> chain:
        return chain(self, other)

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_type": "chord", "header": self.header.as_dict(), "body": self.body.as_dict()}  # type: ignore[union-attr]

    def freeze(self) -> AsyncResult:
        header = self.header.freeze()
        result = self.body.freeze()  # type: ignore[union-attr]
        result.parent = header
        return result

    def apply_async(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        if self.body is None:
            raise TypeError("A chord needs a callback: chord(header, body) or chord(header)(body).")
        result = self.freeze()
        group_id = self.header.group_id
        rest = options.pop("chain", None)
        body = self.body.clone(**({"chain": rest} if rest else {}), root_id=options.get("root_id", ""))
        db = router.db_for_write(TaskRecord)
        with transaction.atomic(using=db):
            if not self.header.tasks:
                body.apply_async(([],))
                return result
            Chord.objects.using(db).create(  # type: ignore[misc]
                id=group_id, member_ids=[m.options["task_id"] for m in self.header.tasks], callback=body.as_dict()
            )
            for member in self.header.tasks:
                member.apply_async(args, kwargs, group_id=group_id, chord=group_id, **options)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None and self.body is None:
            return chord(self.header, body).apply_async(**options)
        return self.apply_async(**options)
