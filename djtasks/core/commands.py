"""The remote-control vocabulary: every command, its arguments and what each may be.

Senders (djtasks.ops.control) check a command's arguments here before they send it; workers
(djtasks.worker.remote) get every control message through parse(), which never raises: a message
it refuses comes back as Refused, with the reason the worker replies with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from djtasks.core.names import queue_name_error
from djtasks.core.schema import shown as _shown

# What `inspect` can ask a worker about, in the order taskctl lists them.
INSPECTIONS = ("active", "scheduled", "reserved", "registered", "stats", "queues")
# The longest control message a worker reads; a longer one is refused unread.
MAX_MESSAGE_BYTES = 64 * 1024
# The most children one pool_grow/pool_shrink asks for (the worker also stops at MAX_CONCURRENCY).
MAX_POOL_STEP = 1024
_MAX_NAME = 255  # task names and ids, as the task row keeps them
_REQUIRED = object()


def _text(what: str, longest: int = _MAX_NAME) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not 0 < len(value) <= longest or not value.isprintable():
            return f"{what} must be 1 to {longest} printable characters, not {_shown(value)}"
        return None

    return check


def _count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_POOL_STEP:
        return f"the number of children must be a whole number from 1 to {MAX_POOL_STEP}, not {_shown(value)}"
    return None


def _inspection(value: Any) -> str | None:
    if value not in INSPECTIONS:
        return f"cannot inspect {_shown(value)}; choose one of {', '.join(INSPECTIONS)}"
    return None


def _queue(value: Any) -> str | None:
    error = queue_name_error(value)
    return f"{error} ({_shown(value)})" if error else None


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"terminate must be true or false, not {_shown(value)}"


@dataclass(frozen=True, slots=True)
class Argument:
    name: str
    check: Callable[[Any], str | None]  # why a value is wrong, or None
    default: Any = _REQUIRED


# Every command a worker obeys, and its arguments.
COMMANDS: dict[str, tuple[Argument, ...]] = {
    "ping": (),
    "inspect": (Argument("what", _inspection),),
    "time_limit": (Argument("task", _text("the task name")),),
    "rate_limit": (Argument("task", _text("the task name")), Argument("rate", _text("the rate", 100))),
    "add_consumer": (Argument("queue", _queue),),
    "cancel_consumer": (Argument("queue", _queue),),
    "pool_grow": (Argument("n", _count, 1),),
    "pool_shrink": (Argument("n", _count, 1),),
    "shutdown": (),
    # Task and worker events of the worker, from now until it stops (as -E / --without-events).
    "enable_events": (),
    "disable_events": (),
    # Sent by djtasks.revoke to the worker holding the task; it has no reply.
    "revoke": (Argument("id", _text("the task id")), Argument("terminate", _flag, False)),
}


@dataclass(frozen=True, slots=True)
class Command:
    """A control message that names a known command with valid arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None  # where the reply goes; None: no reply
    deadline_ms: int | None = None  # Redis time after which the sender no longer waits


@dataclass(frozen=True, slots=True)
class Refused:
    """A control message the worker will not carry out, and why (the reply, if it has a request id)."""

    reason: str
    name: str = "?"
    request_id: str | None = None


def arguments(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Return a command's arguments with their defaults; raise ValueError naming what is wrong."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {_shown(name)}; known: {', '.join(COMMANDS)}")
    spec = COMMANDS[name]
    unknown = sorted(map(_shown, set(given) - {a.name for a in spec}))
    if unknown:
        raise ValueError(f"{name} takes no argument {', '.join(unknown)}")
    found: dict[str, Any] = {}
    for argument in spec:
        value = given.get(argument.name, argument.default)
        if value is _REQUIRED:
            raise ValueError(f"{name} needs the argument {argument.name!r}")
        if error := argument.check(value):
            raise ValueError(f"{name}: {error}")
        found[argument.name] = value
    return found


def parse(payload: object) -> Command | Refused:
    """Read a decoded control message: a known command with valid arguments, or why not (never raises)."""
    if not isinstance(payload, dict):
        return Refused(f"a control message is a JSON object, not {type(payload).__name__}")
    request_id = payload.get("rid")
    if request_id is not None and _text("rid", 64)(request_id) is not None:
        return Refused(f"bad request id {_shown(request_id)}")
    name = payload.get("cmd")
    if not isinstance(name, str):
        return Refused(f"the command must be a string, not {_shown(name)}", request_id=request_id)
    shown = _shown(name)
    # djtasks.revoke sends its arguments beside the command name.
    given = payload.get("args", {}) if "args" in payload or name != "revoke" else _beside(payload)
    if not isinstance(given, dict):
        return Refused(f"the arguments must be a JSON object, not {_shown(given)}", shown, request_id)
    deadline = payload.get("deadline_ms")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int)):
        return Refused(f"bad deadline {_shown(deadline)}", shown, request_id)
    try:
        args = arguments(name, given)
    except ValueError as exc:
        return Refused(str(exc), shown, request_id)
    return Command(name, args, request_id, deadline)


def _beside(payload: dict[Any, Any]) -> dict[str, Any]:
    return {key: payload[key] for key in ("id", "terminate") if key in payload}
