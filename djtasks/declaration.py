"""The djtasks Task (a django.tasks.Task subclass) and the @task decorator."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

from django.conf import settings
from django.tasks import DEFAULT_TASK_QUEUE_NAME, TaskContext, TaskResult, TaskResultStatus
from django.tasks import Task as DjangoTask
from django.utils import timezone
from django.utils.crypto import get_random_string

from . import registry
from .client import enqueue
from .conf import get_settings
from .exceptions import ImproperlyDeclared
from .options import ExecutionOptions
from .result import AsyncResult

BACKEND_PATH = "djtasks.backend.RedisBackend"


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Task(DjangoTask):
    """A task declared with @djtasks.task or @django.tasks.task on the djtasks backend.

    Declaration options are fields; later options (retries, limits...) are added as fields too,
    so both decorators pass them through and dataclasses.replace() keeps them.
    """

    name: str = ""  # The registered name; defaults to "module.function" as in Celery.
    ignore_result: bool = False
    track_started: bool | None = None  # None: the TRACK_STARTED setting decides.
    # Seconds; None: the worker's --soft-time-limit / --time-limit (or no limit).
    soft_time_limit: float | None = None
    time_limit: float | None = None

    def __init__(self, **kwargs: Any) -> None:
        known = {f.name: f for f in fields(Task) if f.init}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            func = kwargs.get("func")
            where = f" on {func.__module__}.{func.__qualname__}" if callable(func) else ""
            raise ImproperlyDeclared(_unknown_options_message(unknown, known, where))
        if "func" not in kwargs:
            raise ImproperlyDeclared("A task needs a function: use @task on a def.")
        for name, f in known.items():
            if name in kwargs:
                value = kwargs[name]
            elif f.default is not MISSING:
                value = f.default
            else:
                value = f.default_factory()  # type: ignore[misc,operator]
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        for option in ("soft_time_limit", "time_limit"):
            value = getattr(self, option)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ImproperlyDeclared(f"{option} must be a positive number of seconds, not {value!r}.")
        if not self.name:
            object.__setattr__(self, "name", f"{self.func.__module__}.{self.func.__qualname__}")
        DjangoTask.__post_init__(self)
        registry.register(self.name, self)

    # Celery's calling API ---------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task inline in this process, as Celery does."""
        if self.takes_context:
            return self.call(TaskContext(task_result=self._inline_result(args, kwargs)), *args, **kwargs)
        return self.call(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Enqueue with positional and keyword arguments; return an AsyncResult."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Enqueue with execution options (task_id, queue, priority, countdown, eta)."""
        try:
            execution = ExecutionOptions.build(**options)
        except TypeError as exc:
            raise TypeError(f"{self.name}.apply_async(): {exc}") from None
        record = enqueue(self, list(args or ()), dict(kwargs or {}), execution)
        return AsyncResult(record.id, task_name=self.name)

    @property
    def effective_track_started(self) -> bool:
        if self.track_started is not None:
            return self.track_started
        return get_settings().TRACK_STARTED

    def _inline_result(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskResult:
        now = timezone.now()
        return TaskResult(
            task=self,
            id=get_random_string(32),
            status=TaskResultStatus.RUNNING,
            enqueued_at=now,
            started_at=now,
            finished_at=None,
            last_attempted_at=now,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.backend,
            errors=[],
            worker_ids=["inline"],
        )


def _unknown_options_message(unknown: list[str], known: dict[str, Any], where: str) -> str:
    hints = []
    for option in unknown:
        close = difflib.get_close_matches(option, list(known) + ["queue"], n=1)
        hints.append(f"{option!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    choices = ", ".join(sorted(set(known) - {"func", "backend"}))
    return f"Unknown task option {', '.join(hints)}{where}. Known options: {choices}."


def djtasks_backend_alias() -> str:
    """Return the TASKS alias that uses the djtasks backend ("default" if none does)."""
    for alias, params in getattr(settings, "TASKS", {}).items():
        if params.get("BACKEND") == BACKEND_PATH:
            return alias
    return "default"


def task(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str | None = None,
    queue_name: str | None = None,
    priority: int = 0,
    backend: str | None = None,
    takes_context: bool = False,
    **options: Any,
) -> Any:
    """Declare a task: @task, or @task(name=..., queue=..., priority=..., ignore_result=...)."""
    if queue is not None and queue_name is not None and queue != queue_name:
        raise ImproperlyDeclared("Pass queue or queue_name, not both.")
    if "run_after" in options:
        raise ImproperlyDeclared(
            "run_after cannot be declared on @task; use apply_async(eta=...) or .using(run_after=...)."
        )

    def wrapper(func: Callable[..., Any]) -> Task:
        if not callable(func):
            raise ImproperlyDeclared(f"@task must decorate a function, not {func!r}.")
        return Task(
            func=func,
            name=name or "",
            priority=priority,
            queue_name=queue or queue_name or DEFAULT_TASK_QUEUE_NAME,
            backend=backend or djtasks_backend_alias(),
            takes_context=takes_context,
            **options,
        )

    if function is not None:
        return wrapper(function)
    return wrapper
