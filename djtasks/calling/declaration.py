"""The djtasks Task (a django.tasks.Task subclass) and the @task decorator."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, NoReturn

from django.tasks import DEFAULT_TASK_QUEUE_NAME, TaskContext, TaskResult, TaskResultStatus
from django.tasks import Task as DjangoTask
from django.utils import timezone
from django.utils.crypto import get_random_string

from djtasks.calling import retry
from djtasks.calling.canvas import Signature
from djtasks.calling.chunks import Chunks, map_signature, starmap_signature
from djtasks.calling.enqueue import djtasks_backend_alias, enqueue
from djtasks.calling.result import AsyncResult
from djtasks.core import registry
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import ImproperlyDeclared, InvalidCall
from djtasks.core.options import NO_OPTIONS, ExecutionOptions, from_celery_priority
from djtasks.core.rates import parse_rate


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Task(DjangoTask):
    """A task declared with @djtasks.task or @django.tasks.task on the djtasks backend.

    Declaration options are fields; later options (retries, limits...) are added as fields too,
    so both decorators pass them through and dataclasses.replace() keeps them.
    """

    # The name the registry, the rows and the messages know the task by (Celery's Task.name): "module.function"
    # unless @task(name=...) says otherwise. `name` itself is Django's: the function's name.
    registered_name: str = ""
    ignore_result: bool = False
    track_started: bool | None = None  # None: the TRACK_STARTED setting decides.
    # Seconds; None: the worker's --soft-time-limit / --time-limit (or no limit).
    soft_time_limit: float | None = None
    time_limit: float | None = None
    bind: bool = False  # Pass the task as the first argument (self), with self.request and self.retry().
    max_retries: int | None = 3  # None: retry forever.
    default_retry_delay: float = 180.0
    autoretry_for: tuple[type[BaseException], ...] = ()
    retry_backoff: bool | float = False  # True or a base in seconds: exponential delays 1, 2, 4... x base.
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    rate_limit: str | None = None  # "10/s", "10/m", "10/h"; enforced across all workers.
    expires: float | None = None  # Seconds after enqueue; a task picked up later is REVOKED.

    def __init__(self, **kwargs: Any) -> None:
        if "name" in kwargs:  # Celery's declaration option, also through @django.tasks.task(name=...)
            kwargs["registered_name"] = kwargs.pop("name") or kwargs.get("registered_name", "")
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
        validate_options(self)
        if not self.registered_name:
            object.__setattr__(self, "registered_name", f"{self.func.__module__}.{self.func.__qualname__}")
        DjangoTask.__post_init__(self)
        registry.register(self.registered_name, self)

    # Celery's calling API ---------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task inline in this process, as Celery does."""
        if self.bind:
            args = (self, *args)
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
        """Enqueue with execution options (see ExecutionOptions.build and the README).

        Raises InvalidCall (a TypeError and a ValueError) naming an option or argument that cannot be stored.
        """
        try:
            execution = ExecutionOptions.build(**options) if options else NO_OPTIONS
            positional, named = list(args or ()), dict(kwargs or {})
        except (TypeError, ValueError) as exc:  # an unknown option, args that are not a sequence...
            raise InvalidCall(f"{self.registered_name}.apply_async(): {exc}") from None
        record = enqueue(self, positional, named, execution)
        return AsyncResult(record.id, task_name=self.registered_name)

    # Canvas -------------------------------------------------------------------------------

    def signature(self, args: Any = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Signature:
        """Return a signature of this task with partial arguments and options."""
        immutable = options.pop("immutable", False)
        return Signature(self.registered_name, args, kwargs, options, immutable=immutable)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature whose arguments a parent's result is prepended to."""
        return Signature(self.registered_name, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: it ignores its parent's result."""
        return Signature(self.registered_name, args, kwargs, immutable=True)

    def map(self, items: Any) -> Signature:
        """One task that calls this task on each item and returns the list of results."""
        return map_signature(self.registered_name, items)

    def starmap(self, items: Any) -> Signature:
        """One task that calls this task with each item unpacked as arguments."""
        return starmap_signature(self.registered_name, items)

    def chunks(self, items: Any, n: int) -> Chunks:
        """Split items into chunks of n, each one starmap task; call it to run them as a group."""
        return Chunks(self.registered_name, items, n)

    # Retries ------------------------------------------------------------------------------

    @property
    def request(self) -> retry.Request:
        """The running invocation (id, retries, args, kwargs, eta, queue, hostname, headers...)."""
        return retry.current_request(self.registered_name)

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: Any = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> NoReturn:
        """Ask to run again later; raises Retry (or the error, once retries are exhausted)."""
        retry.request_retry(self, exc=exc, countdown=countdown, eta=eta, max_retries=max_retries)

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
        close = difflib.get_close_matches(option, list(known) + ["queue", "name"], n=1)
        hints.append(f"{option!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    choices = ", ".join(sorted((set(known) - {"func", "backend", "registered_name"}) | {"name"}))
    return f"Unknown task option {', '.join(hints)}{where}. Known options: {choices}."


def validate_options(task: Task) -> None:
    """Reject declaration options that cannot work, with the exact reason."""
    where = f" on {task.func.__module__}.{task.func.__qualname__}"
    if task.max_retries is not None and (type(task.max_retries) is not int or task.max_retries < 0):
        raise ImproperlyDeclared(f"max_retries must be a whole number >= 0 or None{where}.")
    autoretry = task.autoretry_for
    if not isinstance(autoretry, tuple) or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in autoretry
    ):
        raise ImproperlyDeclared(f"autoretry_for must be a tuple of exception classes{where}.")
    if task.rate_limit is not None:
        try:
            parse_rate(task.rate_limit)
        except ValueError as exc:
            raise ImproperlyDeclared(f"{exc}{where}.") from None
    if task.expires is not None and (not isinstance(task.expires, int | float) or task.expires <= 0):
        raise ImproperlyDeclared(f"expires must be a positive number of seconds{where}.")


def task(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str | None = None,
    queue_name: str | None = None,
    priority: int = 0,
    celery_priority: int | None = None,
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

    if celery_priority is not None:
        if priority:
            raise ImproperlyDeclared("Pass priority (-100..100) or celery_priority (0..9), not both.")
        priority = from_celery_priority(celery_priority)

    def wrapper(func: Callable[..., Any]) -> Task:
        if not callable(func):
            raise ImproperlyDeclared(f"@task must decorate a function, not {func!r}.")
        return Task(
            func=func,
            registered_name=name or "",
            priority=priority,
            queue_name=queue or queue_name or DEFAULT_TASK_QUEUE_NAME,
            backend=backend or djtasks_backend_alias(),
            takes_context=takes_context,
            **options,
        )

    if function is not None:
        return wrapper(function)
    return wrapper
