"""The declaration options of a task: their checks, and the Celery options djtasks takes or refuses with the reason.

A class-based task (or a base= class) gives defaults as class attributes, as in Celery:
`class AddTask(Task): name = "add"; max_retries = 5; def run(self, x, y): ...`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field
from functools import cache
from typing import Any

from djtasks.core.exceptions import ImproperlyDeclared
from djtasks.core.rates import parse_rate

# Celery's declaration options that djtasks honours only with the value that describes what it does.
FIXED = {
    "acks_late": (
        True,
        "djtasks acknowledges a task only once its outcome is recorded, so a task whose worker dies runs "
        "again (acks_late=True); at-most-once delivery (acks_late=False) is not offered",
    ),
    "reject_on_worker_lost": (
        True,
        "a task whose worker process dies is handed back to its queue (up to MAX_DELIVERIES times, then "
        "FAILURE with WorkerLost); failing it at once (reject_on_worker_lost=False) is not offered",
    ),
    "store_errors_even_if_ignored": (
        True,
        "djtasks records a failure's exception and traceback on the row whether or not ignore_result is set",
    ),
}
CELERY_NAMES = {"queue": "queue_name", "name": "registered_name"}  # a class attribute of Celery's name sets this field


def class_defaults(cls: type, base: type, fields: dict[str, Field[Any]]) -> dict[str, Any]:
    """The options a Task subclass sets as class attributes (Celery's way), for the fields not passed."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[: cls.__mro__.index(base)]):
        for attribute, value in vars(klass).items():
            name = CELERY_NAMES.get(attribute, attribute)
            # Methods, properties and the base's slots are behaviour, not option values.
            if name in fields and not hasattr(type(value), "__get__"):
                found[name] = value
    return found


@cache
def signature_of(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def field_default(field: Field[Any]) -> Any:
    if field.default is not MISSING:
        return field.default
    return field.default_factory()  # type: ignore[misc,operator]


def exception_classes(value: Any, option: str, where: str) -> tuple[type[BaseException], ...]:
    """Return a sequence of exception classes as a tuple (Celery takes a list too); refuse anything else."""
    if isinstance(value, type) and issubclass(value, BaseException):
        value = (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ImproperlyDeclared(f"{option} must be a sequence of exception classes, not {value!r}{where}.")
    classes = tuple(value)
    if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        raise ImproperlyDeclared(f"{option} must be a sequence of exception classes{where}.")
    return classes


def unknown_options_message(unknown: list[str], known: dict[str, Any], where: str) -> str:
    hints = []
    for option in unknown:
        close = difflib.get_close_matches(option, list(known) + ["queue", "name"], n=1)
        hints.append(f"{option!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    choices = ", ".join(sorted((set(known) - {"func", "backend", "registered_name"}) | {"name"}))
    return f"Unknown task option {', '.join(hints)}{where}. Known options: {choices}."


def validate_options(task: Any, where: str, setter: Callable[[str, Any], None]) -> None:
    """Reject declaration options that cannot work, with the exact reason (normalizing sequences to tuples)."""
    for option in ("soft_time_limit", "time_limit"):
        value = getattr(task, option)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise ImproperlyDeclared(f"{option} must be a positive number of seconds, not {value!r}{where}.")
    if task.soft_time_limit and task.time_limit and task.soft_time_limit > task.time_limit:
        raise ImproperlyDeclared(f"soft_time_limit must be less than or equal to time_limit{where}.")
    if task.max_retries is not None and (type(task.max_retries) is not int or task.max_retries < 0):
        raise ImproperlyDeclared(f"max_retries must be a whole number >= 0 or None{where}.")
    setter("autoretry_for", exception_classes(task.autoretry_for, "autoretry_for", where))
    check_retry_kwargs(task.retry_kwargs, where)
    setter("throws", exception_classes(task.throws, "throws", where))
    if task.rate_limit is not None:
        try:
            parse_rate(task.rate_limit)
        except ValueError as exc:
            raise ImproperlyDeclared(f"{exc}{where}.") from None
    if task.expires is not None and (not isinstance(task.expires, int | float) or task.expires <= 0):
        raise ImproperlyDeclared(f"expires must be a positive number of seconds{where}.")
    for option, (honoured, reason) in FIXED.items():
        value = getattr(task, option)
        if value is not None and value is not honoured:
            raise ImproperlyDeclared(f"{option}={value!r} is not supported{where}: {reason}.")
    if task.serializer != "json":
        raise ImproperlyDeclared(
            f"serializer={task.serializer!r}{where}: djtasks carries JSON only (arguments and results are JSON "
            "on the row); use serializer='json' or leave it out."
        )
    if not isinstance(task.typing, bool):
        raise ImproperlyDeclared(f"typing must be True or False, not {task.typing!r}{where}.")


RETRY_KWARGS = ("max_retries", "countdown")


def check_retry_kwargs(given: Any, where: str) -> None:
    """Celery's retry_kwargs: a dict of max_retries (a whole number >= 0 or None) and countdown (seconds >= 0)."""
    if given is None:
        return
    if not isinstance(given, dict) or set(given) - set(RETRY_KWARGS):
        raise ImproperlyDeclared(
            f"retry_kwargs must be a dict of {', '.join(RETRY_KWARGS)} (what autoretry_for's retries pass to "
            f"retry()), not {given!r}{where}."
        )
    limit = given.get("max_retries")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ImproperlyDeclared(f"retry_kwargs['max_retries'] must be a whole number >= 0 or None{where}.")
    countdown = given.get("countdown", 0)
    if isinstance(countdown, bool) or not isinstance(countdown, int | float) or not 0 <= countdown < 10**9:
        raise ImproperlyDeclared(f"retry_kwargs['countdown'] must be a number of seconds >= 0{where}.")
