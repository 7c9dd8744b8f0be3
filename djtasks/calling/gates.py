"""Unique, debounced, keyed rate-limited and capped tasks: their declared options, checked once, and their keys.

A task's gate is built when it is declared (Task.__post_init__): a wrong option fails the import
with what to change. Keys are computed from a call's arguments by a function of them or by a
template such as "{customer_id}" (str.format over the arguments, bound as the function would
bind them). Every key is text: a string or an integer as given, or, when longer than
KEY_TEXT_LIMIT or not printable, its SHA-256 ("sha256:" and 40 hex digits), so any key can be
stored, logged and put in a Redis key name.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from djtasks.core.exceptions import ImproperlyDeclared, InvalidCall
from djtasks.core.logs import escape

KEY_TEXT_LIMIT = 200
MAX_WINDOW = 10 * 365 * 86400.0  # ten years: any aware datetime Python holds lies further
MAX_CONCURRENCY = 10_000
KEY_OPTIONS = ("unique_key", "rate_limit_key", "concurrency_key")


@dataclass(frozen=True, slots=True)
class KeyFunction:
    """How a key is computed from a call: a function of its arguments, or a template over them."""

    option: str
    source: Callable[..., Any] | str
    signature: inspect.Signature  # the task function's, to bind a call's arguments to their names
    leading: int = 0  # parameters the task takes before the call's arguments (self with bind, a context)

    def __call__(self, args: list[Any], kwargs: dict[str, Any]) -> str:
        """Return the key text of a call; raise whatever the function raises, or KeyError/TypeError/ValueError.

        The call's arguments are bound to the task's parameters first, so a function sees them by
        name however the call passed them (lambda customer_id, **kw: customer_id), and so does a template.
        """
        bound = self.signature.bind(*([None] * self.leading), *args, **kwargs)
        bound.apply_defaults()
        values = dict(list(bound.arguments.items())[self.leading :])
        for name, parameter in self.signature.parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                values.update(values.pop(name, {}))
        if callable(self.source):
            return key_text(self.source(**values), self.option)
        return key_text(self.source.format_map(values), self.option)

    def compute(self, task_name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
        """The key of a call; InvalidCall (nothing enqueued) if it cannot be computed."""
        try:
            return self(args, kwargs)
        except InvalidCall:
            raise
        except Exception as exc:  # the user's function (or template) met these arguments
            raise InvalidCall(
                f"The {self.option} of task {escape(task_name)} cannot be computed for this call: "
                f"{type(exc).__qualname__}: {described(exc)}. Nothing was enqueued."
            ) from None


@dataclass(frozen=True, slots=True)
class Gate:
    """A task's unique, debounce, keyed rate-limit and concurrency options, as checked at declaration."""

    unique_for: float | None = None
    debounce: float | None = None
    unique_key: KeyFunction | None = None
    rate_key: KeyFunction | None = None
    concurrency: int | None = None
    concurrency_key: KeyFunction | None = None

    @property
    def locks(self) -> bool:
        """Whether its rows hold a unique key (unique or debounced)."""
        return self.unique_for is not None or self.debounce is not None

    @property
    def at_enqueue(self) -> bool:
        return self.locks or self.rate_key is not None or self.concurrency_key is not None

    @property
    def at_start(self) -> bool:
        return self.rate_key is not None or self.concurrency is not None


# Gates by task name: those that act when a call is enqueued, and those that act when a worker starts it.
ENQUEUE: dict[str, Gate] = {}
START: dict[str, Gate] = {}


def register(name: str, gate: Gate | None) -> None:
    """Make a task's gate the one its calls and starts use (after its name is registered)."""
    for table, wanted in ((ENQUEUE, gate is not None and gate.at_enqueue), (START, gate is not None and gate.at_start)):
        if wanted:
            table[name] = gate  # type: ignore[assignment]
        else:
            table.pop(name, None)


def described(exc: BaseException) -> str:
    """str(exc), escaped and cut to 200 characters, or a note saying that it failed."""
    try:
        return escape(str(exc))[:200]
    except BaseException:  # noqa: BLE001 - an exception's str() may raise anything
        return f"<str() of this {type(exc).__qualname__} failed>"


def key_text(value: object, option: str) -> str:
    """The text of a key: a non-empty string or an integer; a long or unprintable one as its digest."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCall(f"{option} must be a non-empty string or an integer, not {type(value).__name__}.")
    text = str.__str__(value) if isinstance(value, str) else str(int(value))
    if not text:
        raise InvalidCall(f"{option} must be a non-empty string or an integer, not ''.")
    if len(text) > KEY_TEXT_LIMIT or not text.isprintable():
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return text


def arguments_key(args: list[Any], kwargs: dict[str, Any]) -> str:
    """The default unique key: a digest of the call's arguments as canonical JSON (keyword order does not count)."""
    canonical = json.dumps([args, kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "args:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def lock_digest(task_name: str, kind: str, key: str) -> str:
    """The value of the row's unique_lock column: one per task name, kind (unique or debounce) and key."""
    return hashlib.sha256(f"{task_name}\x00{kind}\x00{key}".encode("utf-8", "surrogatepass")).hexdigest()


def seconds(option: str, value: object, where: str) -> float | None:
    """A window or delay in seconds from a number or a timedelta; ImproperlyDeclared if it is not one."""
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        number = -1.0
    if not 0 < number <= MAX_WINDOW:
        raise ImproperlyDeclared(
            f"{option} must be a positive number of seconds or a timedelta (at most ten years), not {value!r}{where}."
        )
    return float(number)


def key_function(option: str, value: object, func: Callable[..., Any], leading: int, where: str) -> KeyFunction | None:
    """Check a declared key (a function or a template of the task's arguments) and return how to compute it."""
    if value is None:
        return None
    signature = inspect.signature(func)
    if callable(value):
        return KeyFunction(option, value, signature, leading)
    if not isinstance(value, str):
        raise ImproperlyDeclared(
            f"{option} must be a function of the task's arguments or a template such as "
            f"'{{customer_id}}', not {value!r}{where}."
        )
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
    except ValueError as exc:
        raise ImproperlyDeclared(f"{option} {value!r} is not a valid template ({exc}){where}.") from None
    parameters = list(signature.parameters.values())[leading:]
    names = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    open_keywords = any(p.kind is p.VAR_KEYWORD for p in parameters)
    if not fields:
        raise ImproperlyDeclared(
            f"{option} {value!r} names no argument{where}: a template names arguments in braces, "
            f"such as '{{customer_id}}' (leave {option} out to share one key among all calls)."
        )
    for field in fields:
        root = field.split(".", 1)[0].split("[", 1)[0]
        if not root or root.isdigit():
            raise ImproperlyDeclared(f"{option} {value!r} must name arguments, not positions{where}.")
        if root not in names and not open_keywords:
            raise ImproperlyDeclared(
                f"{option} {value!r} names {root!r}, which is not an argument of the task{where}; "
                f"its arguments are: {', '.join(names) or 'none'}."
            )
    return KeyFunction(option, value, signature, leading)


def build(task: Any, where: str) -> Gate | None:
    """Check a task's unique, debounce, keyed rate-limit and concurrency options; None if it declares none."""
    unique_for = seconds("unique_for", task.unique_for, where)
    debounce = seconds("debounce", task.debounce, where)
    leading = int(bool(task.bind)) + int(bool(task.takes_context))
    keys = {option: key_function(option, getattr(task, option), task.func, leading, where) for option in KEY_OPTIONS}
    if unique_for is not None and debounce is not None:
        raise ImproperlyDeclared(
            f"unique_for and debounce cannot be combined{where}: "
            "a debounced task already keeps one waiting call per key."
        )
    if keys["unique_key"] is not None and unique_for is None and debounce is None:
        raise ImproperlyDeclared(f"unique_key needs unique_for= or debounce={where} (a call may still pass its own).")
    if keys["rate_limit_key"] is not None and not task.rate_limit:
        raise ImproperlyDeclared(f"rate_limit_key needs a rate_limit such as '10/m'{where}.")
    concurrency = task.concurrency
    if concurrency is not None and (type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY):
        raise ImproperlyDeclared(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY} (tasks running at once across "
            f"all workers), not {concurrency!r}{where}."
        )
    if keys["concurrency_key"] is not None and concurrency is None:
        raise ImproperlyDeclared(f"concurrency_key needs concurrency= (how many may run at once per key){where}.")
    gate = Gate(
        unique_for=unique_for,
        debounce=debounce,
        unique_key=keys["unique_key"],
        rate_key=keys["rate_limit_key"],
        concurrency=concurrency,
        concurrency_key=keys["concurrency_key"],
    )
    return gate if gate.at_enqueue or gate.at_start else None
