"""The djtasks Task (a django.tasks.Task subclass), the @task decorator, and class-based tasks.

Task is generic over its function's parameters and return type (Task[P, R]): mypy checks
delay(), si(), apply() and calling the task inline against the function, and AsyncResult[R].get()
returns R.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, fields
from datetime import timedelta
from typing import Any, Concatenate, Literal, NoReturn, overload

from django.tasks import Task as DjangoTask

from djtasks.calling import binding, eager, gates, retry, taskoptions, unique
from djtasks.calling.canvas import Signature
from djtasks.calling.chunks import Chunks, map_signature, starmap_signature
from djtasks.calling.direct import enqueue_id
from djtasks.calling.enqueue import check_json, djtasks_backend_alias
from djtasks.calling.hooks import TaskHooks
from djtasks.calling.replace import replace as replace_task
from djtasks.calling.result import AsyncResult
from djtasks.calling.state import update_state
from djtasks.core import registry
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import ImproperlyDeclared, InvalidCall
from djtasks.core.options import NO_OPTIONS, ExecutionOptions, from_celery_priority


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Task[**P, R](DjangoTask, TaskHooks):
    """A task declared with @djtasks.task or @django.tasks.task on the djtasks backend, or a Task subclass with run().

    Declaration options are fields; a subclass may set them as class attributes (Celery's way),
    and both decorators pass them through, and dataclasses.replace() keeps them.
    """

    # Celery's name, the key of registry, rows, messages ("module.function" unless name=...); .name is Django's.
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
    retry_kwargs: dict[str, Any] | None = None  # Celery's: max_retries and countdown of autoretry_for's retries.
    retry_backoff: bool | float = False  # True or a base in seconds: exponential delays 1, 2, 4... x base.
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    rate_limit: str | None = None  # "10/s", "10/m", "10/h"; enforced across all workers.
    expires: float | None = None  # Seconds after enqueue; a task picked up later is REVOKED.
    typing: bool = True  # Check a call's arguments against the function's signature at delay()/apply_async().
    throws: tuple[type[BaseException], ...] = ()  # Expected errors: FAILURE, logged without a traceback.
    serializer: str = "json"  # Celery's option; djtasks carries JSON only.
    acks_late: bool | None = True  # Celery's options, honoured only with the values that say what djtasks does.
    reject_on_worker_lost: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    # calling/gates.py: windows in seconds or timedeltas; a key is a function of the arguments or "{arg}".
    unique_for: float | timedelta | None = None  # One unfinished row per name and key within this window.
    unique_key: Callable[..., Any] | str | None = None  # Default: the arguments (unique), the name (debounce).
    debounce: float | timedelta | None = None  # A new call replaces a waiting one's arguments and moves its start.
    rate_limit_key: Callable[..., Any] | str | None = None  # One rate_limit bucket per key.
    concurrency: int | None = None  # At most this many running at once across all workers (per key).
    concurrency_key: Callable[..., Any] | str | None = None

    def __init__(self, **kwargs: Any) -> None:
        if "name" in kwargs:  # Celery's declaration option, also through @django.tasks.task(name=...)
            kwargs["registered_name"] = kwargs.pop("name") or kwargs.get("registered_name", "")
        known = {f.name: f for f in fields(Task) if f.init}
        cls = type(self)
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            func = kwargs.get("func")
            where = f" on {func.__module__}.{func.__qualname__}" if callable(func) else ""
            raise ImproperlyDeclared(taskoptions.unknown_options_message(unknown, known, where))
        if "func" not in kwargs:
            run = getattr(cls, "run", None)
            if not callable(run):
                raise ImproperlyDeclared("A task needs a function: use @task on a def, or give a Task subclass run().")
            # A class-based task: run(self, ...) is the function, always called with the task first.
            implied = {"func": run, "bind": True, "registered_name": f"{cls.__module__}.{cls.__qualname__}"}
        else:
            implied = {}
        values = {**implied, **taskoptions.class_defaults(cls, Task, known), **kwargs} if cls is not Task else kwargs
        for name, f in known.items():
            object.__setattr__(self, name, values[name] if name in values else taskoptions.field_default(f))
        self.__post_init__()

    def __post_init__(self) -> None:
        func = self.func
        where = f" on {func.__module__}.{func.__qualname__}"
        taskoptions.validate_options(self, where, lambda name, value: object.__setattr__(self, name, value))
        gate = gates.build(self, where)  # unique_for, unique_key, debounce, rate_limit_key, concurrency...
        if not self.registered_name:
            object.__setattr__(self, "registered_name", f"{func.__module__}.{func.__qualname__}")
        DjangoTask.__post_init__(self)
        registry.register(self.registered_name, self)
        gates.register(self.registered_name, gate)

    @property
    def name(self) -> str:
        """Django's name: the function's; a class-based task's is Celery's (its registered name)."""
        return self.registered_name if self.func is getattr(type(self), "run", None) else self.func.__name__

    # Celery's calling API ---------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task inline in this process, as Celery does."""
        prefix: tuple[Any, ...] = (self,) if self.bind else ()
        if self.takes_context:
            context = retry.Context(task_result=retry.inline_result(self, args, kwargs), task=self)
            return self.call(*prefix, context, *args, **kwargs)  # type: ignore[no-any-return]
        return self.call(*prefix, *args, **kwargs)  # type: ignore[no-any-return]

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Enqueue with positional and keyword arguments; return an AsyncResult."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Enqueue with execution options (see core/options.py's CELERY_OPTIONS and docs/topics/tasks.md).

        Raises InvalidCall (a TypeError and a ValueError) naming an option or argument that cannot be
        stored, or arguments the function cannot take (typing=True, as in Celery).
        """
        once = unique.pop_call(options) if options else None  # unique_key=, unique_for= (calling/unique.py)
        try:
            execution = ExecutionOptions.build(**options) if options else NO_OPTIONS
            positional, named = list(args or ()), dict(kwargs or {})
        except (TypeError, ValueError) as exc:  # an unknown option, args that are not a sequence...
            raise InvalidCall(f"{self.registered_name}.apply_async(): {exc}") from None
        positional, named = check_json(self.registered_name, positional, named)
        if self.typing and not execution.parent_id:  # a workflow's next step gets a result nobody checked
            self.check_arguments(positional, named)
        task_id = enqueue_id(self, positional, named, execution, once, checked=True)
        return AsyncResult.enqueued(task_id, self.registered_name)

    def check_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Raise InvalidCall if the function cannot take these arguments (Celery's typing check)."""
        binding.check_arguments(self, args, kwargs)

    def apply(self, args: Any = None, kwargs: dict[str, Any] | None = None, **options: Any) -> eager.EagerResult[R]:
        """Run the task in this process now (retries included) and return an EagerResult, as Celery's apply()."""
        return eager.apply(self, args, kwargs, **options)

    def update_state(self, task_id: str | None = None, state: str | None = None, meta: Any = None) -> bool:
        """Record a custom state and meta for the running attempt (AsyncResult.state and .info show them)."""
        return update_state(self, task_id, state, meta)

    def replace(self, sig: Signature) -> Any:
        """Replace this task with sig: the row keeps its id and workflow, and runs sig instead.

        Write ``return self.replace(sig)``: in a worker it ends the task; called directly or by apply(),
        it returns sig's value.
        """
        return replace_task(self, sig)

    # Canvas -------------------------------------------------------------------------------

    def signature(self, args: Any = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Signature:
        """Return a signature of this task with partial arguments and options."""
        immutable = options.pop("immutable", False)
        return Signature(self.registered_name, args, kwargs, options, immutable=immutable)

    subtask = signature  # Celery's old name

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature whose arguments a parent's result is prepended to (partial, so not type-checked)."""
        return Signature(self.registered_name, args, kwargs)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
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


def _set_attribute(self: Task[Any, Any], name: str, value: Any) -> None:
    """Fields stay frozen; a subclass may keep attributes of its own (Celery's DatabaseTask caches a connection)."""
    if type(self) is Task or name in _FIELDS:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


# dataclass(slots=True)'s frozen __setattr__ refers to the class before its slots were added, and
# fails for any subclass instance (Python 3.13); this one behaves as it means to.
_FIELDS = frozenset(f.name for f in fields(Task))
Task.__setattr__ = _set_attribute  # type: ignore[method-assign,assignment]


def register_task[T: Task[Any, Any]](task: T | type[T]) -> T:
    """Register a class-based task (``AddTask = register_task(AddTask)``, or Celery 5's register_task(AddTask()))."""
    if isinstance(task, type):
        if not issubclass(task, Task):
            raise ImproperlyDeclared(f"register_task() takes a djtasks Task subclass, not {task!r}.")
        task = task()
    if not isinstance(task, Task):
        raise ImproperlyDeclared(f"register_task() takes a djtasks Task or Task subclass, not {task!r}.")
    return registry.lookup(task.registered_name)  # type: ignore[return-value]


@overload
def task[**Q, T](function: Callable[Q, T], /) -> Task[Q, T]: ...
@overload
def task[**Q, T](
    *, bind: Literal[True], **options: Any
) -> Callable[[Callable[Concatenate[Any, Q], T]], Task[Q, T]]: ...  # type: ignore[overload-overlap]
@overload
def task[**Q, T](
    *, takes_context: Literal[True], **options: Any
) -> Callable[[Callable[Concatenate[Any, Q], T]], Task[Q, T]]: ...  # type: ignore[overload-overlap]
@overload
def task[**Q, T](**options: Any) -> Callable[[Callable[Q, T]], Task[Q, T]]: ...
def task(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str | None = None,
    queue_name: str | None = None,
    priority: int | None = None,
    celery_priority: int | None = None,
    backend: str | None = None,
    takes_context: bool = False,
    base: type[Task[Any, Any]] | None = None,
    **options: Any,
) -> Any:
    """Declare a task: @task, or @task(name=..., queue=..., priority=..., base=MyTask, ignore_result=...)."""
    if queue is not None and queue_name is not None and queue != queue_name:
        raise ImproperlyDeclared("Pass queue or queue_name, not both.")
    if "run_after" in options:
        raise ImproperlyDeclared(
            "run_after cannot be declared on @task; use apply_async(eta=...) or .using(run_after=...)."
        )
    if base is not None and not (isinstance(base, type) and issubclass(base, Task)):
        raise ImproperlyDeclared(f"base= must be a subclass of djtasks.Task (with the hooks you need), not {base!r}.")
    if celery_priority is not None:
        if priority:
            raise ImproperlyDeclared("Pass priority (-100..100) or celery_priority (0..9), not both.")
        priority = from_celery_priority(celery_priority)
    given = {"name": name, "priority": priority, "queue_name": queue or queue_name}
    declared = {key: value for key, value in given.items() if value is not None}

    def wrapper(func: Callable[..., Any]) -> Task[Any, Any]:
        if not callable(func):
            raise ImproperlyDeclared(f"@task must decorate a function, not {func!r}.")
        return (base or Task)(
            func=func, backend=backend or djtasks_backend_alias(), takes_context=takes_context, **declared, **options
        )

    return wrapper(function) if function is not None else wrapper


shared_task = task  # Celery's decorator for tasks of reusable apps; djtasks has no app object to bind to
