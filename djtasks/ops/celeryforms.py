"""Celery's control call forms, read as djtasks' own (djtasks.ops.control calls these first).

Celery's `app.control.broadcast(command, arguments=...)` names arguments its own way
(task_name, rate_limit, task_id), picks workers by pattern, and has commands djtasks does
differently; here each is translated to djtasks' command and arguments, or refused with a
ValueError/TypeError that names the djtasks way, before anything is sent.
"""

from __future__ import annotations

import fnmatch
import re
import signal as signals
from collections.abc import Callable
from typing import Any

from djtasks.core.schema import shown

# Celery's argument names -> djtasks' (of the command they belong to).
ARGUMENT_NAMES = {
    "rate_limit": {"task_name": "task", "rate_limit": "rate"},
    "time_limit": {"task_name": "task"},
    "revoke": {"task_id": "task_ids"},
    "terminate": {"task_id": "task_ids"},
}
# Celery's inspect commands (broadcast or control.inspect()) -> what djtasks' inspect asks.
INSPECTIONS = {
    "active": "active",
    "scheduled": "scheduled",
    "reserved": "reserved",
    "registered": "registered",
    "registered_tasks": "registered",
    "stats": "stats",
    "active_queues": "queues",
}
# Celery's commands djtasks has no equivalent of -> what it does instead.
ELSEWHERE = {
    "autoscale": "Start the worker with --autoscale MAX,MIN, or use pool_grow / pool_shrink.",
    "pool_restart": "Restart the worker (a warm shutdown, then start it again): children are forked from it.",
    "heartbeat": "Workers send a heartbeat every tick; control.status() reads them.",
    "election": "djtasks needs no election: every worker runs the beat under a database lock.",
    "query_task": "Ask the database: AsyncResult(id).state, or the task's row in the admin.",
    "revoked": "Revoked tasks are rows in state REVOKED (TaskRecord.objects.filter(state='REVOKED')).",
    "conf": "Every worker reads the same Django settings; see DJTASKS.",
    "report": "Use control.inspect('stats').",
    "dump_conf": "Every worker reads the same Django settings; see DJTASKS.",
    "memdump": "Use control.inspect('stats') (rusage) and MAX_MEMORY_PER_CHILD.",
    "memsample": "Use control.inspect('stats') (rusage) and MAX_MEMORY_PER_CHILD.",
    "objgraph": "Not offered: djtasks does not run code on request in a worker.",
    "shutdown_hard": "Send SIGQUIT to the worker: control.shutdown() is warm.",
}
# Signals `revoke(..., terminate=True, signal=...)` takes: djtasks ends the child with SIGKILL either way.
TERMINATE_SIGNALS = {signals.SIGTERM, signals.SIGKILL, signals.SIGINT, signals.SIGQUIT}
MAX_TIMEOUT = 3600.0
SENDING = ("reply", "limit", "callback", "pattern", "matcher", "connection", "channel")
_NO_CONNECTION = (
    "djtasks sends control messages over its own Redis connection (DJTASKS['REDIS_URL']); "
    "{0}= (a kombu {0}) is not taken."
)
_NO_EXCHANGES = "djtasks has no exchanges or bindings: a queue is a name; add_consumer(queue) is enough"


def translate(command: Any, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return djtasks' command and arguments for a Celery (or djtasks) command and arguments."""
    if not isinstance(command, str):
        raise ValueError(f"the command must be a string, not {shown(command)}")
    if command in ELSEWHERE:
        raise ValueError(f"djtasks has no {command!r} command. {ELSEWHERE[command]}")
    if command in INSPECTIONS:
        return "inspect", {"what": INSPECTIONS[command], **arguments}
    names = ARGUMENT_NAMES.get(command, {})
    translated = {names.get(key, key): value for key, value in arguments.items()}
    if command == "add_consumer":
        translated = consumer_arguments(translated)
    return command, translated


def consumer_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """add_consumer's queue, once Celery's exchange, exchange_type, routing_key and options are checked."""
    queue = arguments.get("queue")
    for key, fine in (("exchange", {None, queue}), ("routing_key", {None, queue}), ("exchange_type", {None, "direct"})):
        value = arguments.pop(key, None)
        if not _hashable(value) or value not in fine:
            raise ValueError(f"{_NO_EXCHANGES} ({key}={shown(value)})")
    if arguments.pop("options", None):
        raise ValueError(f"{_NO_EXCHANGES} (options are kombu's)")
    return arguments


def task_ids(value: Any) -> list[str]:
    """Celery's task_id: one id or a list of them."""
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, list | tuple) or not all(isinstance(i, str) and 0 < len(i) <= 255 for i in ids):
        raise ValueError(f"a task id is a string of 1 to 255 characters (or a list of them), not {shown(value)}")
    return list(ids)


def terminate_signal(value: Any) -> None:
    """Accept Celery's signal= of a terminating revoke: djtasks kills the task's child with SIGKILL."""
    if value is None:
        return
    try:
        number = signals.Signals[value.upper()] if isinstance(value, str) else signals.Signals(value)
    except (KeyError, ValueError, TypeError, AttributeError):
        number = None
    if isinstance(value, bool) or number is None or number not in TERMINATE_SIGNALS:
        raise ValueError(
            f"signal {shown(value)}: djtasks ends a terminated task's child with SIGKILL (its row says "
            "Terminated) and takes SIGTERM, SIGKILL, SIGINT or SIGQUIT (names or numbers) as asking for that."
        )


def no_connection(connection: Any, channel: Any) -> None:
    for name, value in (("connection", connection), ("channel", channel)):
        if value is not None:
            raise TypeError(_NO_CONNECTION.format(name))


def destinations(destination: Any, live: Callable[[], list[str]], pattern: Any, matcher: Any) -> list[str]:
    """The workers a command goes to: the destination list, else the live ones matching pattern (if given)."""
    if destination is not None:
        if not isinstance(destination, list | tuple) or not all(isinstance(w, str) for w in destination):
            raise ValueError(f"destination must be a list of worker ids, not {shown(destination)}")
    chosen = list(dict.fromkeys(destination)) if destination else live()
    if pattern is None:
        return chosen
    if matcher not in {None, "glob", "pcre"}:
        raise ValueError(f"matcher must be 'glob' (the default) or 'pcre', not {shown(matcher)}")
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be a string, not {shown(pattern)}")
    if matcher == "pcre":
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {shown(pattern)} is not a regular expression: {exc}") from None
        return [w for w in chosen if regex.search(w)]
    return [w for w in chosen if fnmatch.fnmatchcase(w, pattern)]


def check_timeout(timeout: Any) -> None:
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")


def sending(destination: Any, timeout: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The sending options (Celery's keywords) of a command that is not given to broadcast, checked."""
    unknown = set(options) - set(SENDING)
    if unknown:
        raise ValueError(f"takes no argument {', '.join(sorted(map(shown, unknown)))}")
    no_connection(options.pop("connection", None), options.pop("channel", None))
    check_timeout(timeout)
    reply_limit(options.get("limit"))
    if options.get("callback") is not None and not callable(options["callback"]):
        raise TypeError(f"callback must be callable, not {type(options['callback']).__name__}")
    defaults = {"reply": True, "limit": None, "callback": None, "pattern": None, "matcher": None}
    return {**defaults, **options, "destination": destination, "timeout": timeout}


def reply_limit(limit: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a whole number of replies, at least 1, not {shown(limit)}")


def _hashable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class Inspect:
    """Celery's Inspect: each method returns {worker id: data} for the workers that answered, or None."""

    def __init__(self, send: Callable[..., Any], destination: Any, timeout: float, options: dict[str, Any]):
        self.send, self.destination, self.timeout, self.options = send, destination, timeout, options

    def _ask(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any] | None:
        replies = self.send(command, arguments, self.destination, timeout=self.timeout, **self.options)
        answered = {r.worker: r.data for r in replies if r.ok}
        return answered or None

    def ping(self) -> dict[str, Any] | None:
        found = self._ask("ping")
        return found and {worker: {"ok": data} for worker, data in found.items()}

    def active(self) -> dict[str, Any] | None:
        return self._ask("active")

    def scheduled(self) -> dict[str, Any] | None:
        return self._ask("scheduled")

    def reserved(self) -> dict[str, Any] | None:
        return self._ask("reserved")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._ask("registered")

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        return self._ask("stats")

    def active_queues(self) -> dict[str, Any] | None:
        return self._ask("active_queues")


def stripped(queue: Any) -> Any:
    return queue.strip() if isinstance(queue, str) else queue


def strings(value: Any) -> list[str]:
    """The strings of a list read from a reply or heartbeat (anything else: none)."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
