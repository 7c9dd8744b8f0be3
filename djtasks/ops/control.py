"""Remote control of running workers: send a command, gather each worker's reply within a timeout.

Every function takes `destination` (worker names such as "w1@host"; None means every
live worker) and ``timeout`` (seconds), and returns one Reply per worker, in destination order.
A worker that does not answer in time gets a Reply with ok=False and "no reply from ... within
N s"; arguments are checked against core.commands before anything is sent (ValueError). `status()`
reads the heartbeats and asks no worker anything. The admin calls these too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from djtasks.calling.overrides import set_time_limit
from djtasks.calling.ratelimit import set_rate_limit
from djtasks.calling.revoke import revoke as revoke_task
from djtasks.core import commands, registry
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import NotRegistered
from djtasks.ops import celeryforms as forms
from djtasks.ops.celeryforms import Inspect as Inspect
from djtasks.transport.broker import get_broker

DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = forms.MAX_TIMEOUT


@dataclass(frozen=True, slots=True)
class Reply:
    worker: str
    ok: bool
    data: Any = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_celery(self) -> dict[str, Any]:
        """Celery's shape of one reply: {worker: data}, or {worker: {"error": ...}}."""
        return {self.worker: self.data if self.ok else {"error": self.error}}


def workers() -> list[str]:
    """Return the ids of the workers whose heartbeat is alive, sorted."""
    return sorted(get_broker().workers())


def status() -> list[dict[str, Any]]:
    """Describe every live worker from its heartbeat (no round trip to the workers).

    Ages are measured on Redis' clock (the heartbeat's TTL left), so a worker whose clock is off
    shows the right age; an unreadable heartbeat is skipped.
    """
    rows = []
    for worker_id, beat in sorted(get_broker().heartbeats().items()):
        info, age = beat.info, beat.age_s
        uptime = forms.number(info.get("uptime_s"))
        rows.append(
            {
                "worker": worker_id,
                "hostname": info.get("hostname"),
                "pid": info.get("pid"),
                "queues": forms.strings(info.get("queues")),
                "concurrency": info.get("concurrency"),
                "processed": info.get("processed"),
                # Tasks the worker holds: running, and reserved by its children but not begun.
                "held": len(forms.strings(info.get("active"))),
                "started_at": info.get("started_at"),
                "pool": info.get("pool") if isinstance(info.get("pool"), str) else None,
                "events": info.get("events") if isinstance(info.get("events"), bool) else None,
                "heartbeat_at": info.get("heartbeat_at"),
                "heartbeat_age_s": age,
                "uptime_s": None if uptime is None else round(uptime + (age or 0.0), 1),
            }
        )
    return rows


def broadcast(
    command: str,
    arguments: dict[str, Any] | None = None,
    destination: list[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **extra: Any,
) -> list[Reply]:
    """Send a command to the destination workers (all live ones by default) and gather their replies.

    Celery's form is taken: its argument names (arguments={'task_name': ..., 'rate_limit': ...}),
    other keywords as arguments, and its keywords reply=False (send, wait for nothing, return []),
    limit (stop after that many replies), callback (called with {worker: data} per reply),
    pattern/matcher ('glob' or 'pcre', on worker ids). rate_limit, time_limit (given soft/hard)
    and revoke go through the functions below: the change is durable whichever form sends it.

    The arguments are checked first (ValueError). The command is valid for ``timeout`` seconds on
    Redis' clock: a worker reading it later drops it unanswered, whatever its own clock says.
    """
    options = forms.sending(destination, timeout, {k: extra.pop(k) for k in forms.SENDING if k in extra})
    if arguments is not None and not isinstance(arguments, dict):
        raise ValueError(f"arguments must be a dict, not {type(arguments).__name__}")
    command, given = forms.translate(command, {**(arguments or {}), **extra})
    if command in {"rate_limit", "time_limit"} and "task" not in given:
        raise ValueError(f"{command} needs the argument 'task_name' (Celery) or 'task' (djtasks)")
    if command == "rate_limit" and set(given) <= {"task", "rate"}:
        if "rate" not in given:
            raise ValueError("rate_limit needs the argument 'rate_limit' (Celery) or 'rate' (djtasks)")
        return rate_limit(given["task"], given["rate"], **options)
    if command == "time_limit" and set(given) - {"task"} and set(given) <= {"task", "soft", "hard"}:
        return time_limit(given["task"], given.get("soft"), given.get("hard"), **options)
    if command in {"revoke", "terminate"} and set(given) <= {"task_ids", "id", "terminate", "signal"}:
        ids: Any = given.get("task_ids", given.get("id"))
        stop = command == "terminate" or given.get("terminate", False)
        return revoke(ids, terminate=stop, signal=given.get("signal"))
    return _send(command, given, **options)


def _send(
    command: str,
    arguments: dict[str, Any],
    *,
    destination: list[str] | None,
    timeout: float,
    reply: bool,
    limit: int | None,
    callback: Callable[[dict[str, Any]], Any] | None,
    pattern: str | None,
    matcher: str | None,
) -> list[Reply]:
    args = commands.arguments(command, arguments)
    broker = get_broker()
    targets = forms.destinations(destination, workers, pattern, matcher)
    if not targets:
        return []
    if not reply:
        broker.send_controls(targets, {"cmd": command, "args": args}, timeout_s=timeout)
        return []
    request_id = uuid.uuid4().hex
    deadline = time.monotonic() + timeout  # the caller's own wait: one clock, this host's
    broker.send_controls(targets, {"cmd": command, "rid": request_id, "args": args}, timeout_s=timeout)
    replies: dict[str, Reply] = {}
    wanted = min(len(targets), limit or len(targets))
    # Each wait is short enough to stay under the Redis socket timeout.
    longest = max(get_settings().SOCKET_TIMEOUT - 0.5, 0.1)
    try:
        while len(replies) < wanted and (left := deadline - time.monotonic()) > 0:
            got = broker.wait_reply(request_id, min(left, longest))
            if got is None or got["worker"] not in targets:
                continue
            worker_id = got["worker"]
            replies[worker_id] = Reply(worker_id, got["ok"], got["data"], got["error"])
            if callback is not None:
                callback(replies[worker_id].as_celery())
    finally:
        broker.forget_replies(request_id)
    if limit is not None:
        return [replies[w] for w in targets if w in replies]
    return [replies.get(w) or Reply(w, False, error=f"no reply from {w} within {timeout:g} s") for w in targets]


def ping(destination: list[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> list[Reply]:
    return broadcast("ping", destination=destination, timeout=timeout, **options)


def inspect(
    what: str | list[str] | None = None,
    *,
    destination: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **options: Any,
) -> Any:
    """Ask workers about their active, scheduled, reserved or registered tasks, stats or queues.

    With no ``what`` (or a list of worker ids first, as Celery's app.control.inspect([...])), return
    an Inspect whose methods (active(), stats(), active_queues()...) answer as Celery's do.
    """
    if what is None or isinstance(what, list | tuple):
        return Inspect(broadcast, list(what) if what else destination, timeout, options)
    return broadcast("inspect", {"what": what}, destination=destination, timeout=timeout, **options)


def revoke(
    task_id: str | list[str],
    destination: list[str] | None = None,
    terminate: bool = False,
    signal: str | int | None = None,
    **options: Any,
) -> list[Reply]:
    """Revoke tasks (durably, in the database); the worker holding one is told by revocation.revoke.

    Celery's forms are taken: one id or a list; signal= (SIGTERM, SIGKILL...: djtasks ends a
    terminated task's child with SIGKILL); destination, reply and timeout are accepted and change
    nothing: the row decides, so every worker honours the revoke. One Reply per task id.
    """
    ids = forms.task_ids(task_id)
    forms.terminate_signal(signal)
    if not isinstance(terminate, bool):
        raise ValueError(f"terminate must be true or false, not {terminate!r}"[:200])
    forms.sending(destination, options.pop("timeout", DEFAULT_TIMEOUT), options)  # checked, then not needed
    return [Reply(i, True, revoke_task(i, terminate=terminate)) for i in ids]


def terminate(
    task_id: str | list[str], destination: list[str] | None = None, signal: str | int = "SIGTERM", **options: Any
) -> list[Reply]:
    """Celery's terminate: revoke(task_id, terminate=True)."""
    return revoke(task_id, destination, terminate=True, signal=signal, **options)


def rate_limit(
    task_name: str,
    rate_limit: str,
    destination: list[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **options: Any,
) -> list[Reply]:
    """Change a task's rate limit ("10/m"; "", "none" or None for the declared one) for every worker."""
    _known(task_name)
    if rate_limit is not None and not isinstance(rate_limit, str | int):
        raise ValueError(f"a rate is text such as '10/m', not {type(rate_limit).__name__}")
    rate = "" if rate_limit is None else str(rate_limit).strip()
    if rate.lower() in {"", "none"}:
        set_rate_limit(task_name, None)
    else:
        set_rate_limit(task_name, rate)  # a bad rate raises ValueError before anything changes
    return _send(
        "rate_limit", {"task": task_name, "rate": rate or "none"}, **forms.sending(destination, timeout, options)
    )


def time_limit(
    task_name: str,
    soft: float | str | None = None,
    hard: float | str | None = None,
    destination: list[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **options: Any,
) -> list[Reply]:
    """Change a task's soft and hard time limits (seconds; 0 or None for none) for every worker."""
    _known(task_name)
    set_time_limit(task_name, soft, hard)
    return _send("time_limit", {"task": task_name}, **forms.sending(destination, timeout, options))


def add_consumer(
    queue: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, **options: Any
) -> list[Reply]:
    """Make workers read one more queue; Celery's exchange/routing_key are taken when they name the queue."""
    celery: dict[str, Any] = {k: options.pop(k) for k in ("exchange", "exchange_type", "routing_key") if k in options}
    given = forms.consumer_arguments(
        {"queue": forms.stripped(queue), **celery, "options": options.pop("options", None)}
    )
    return broadcast("add_consumer", given, destination=destination, timeout=timeout, **options)


def cancel_consumer(
    queue: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, **options: Any
) -> list[Reply]:
    return broadcast(
        "cancel_consumer", {"queue": forms.stripped(queue)}, destination=destination, timeout=timeout, **options
    )


def pool_grow(
    n: int = 1, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, **options: Any
) -> list[Reply]:
    """Start n more children in each worker (up to its MAX_CONCURRENCY)."""
    return broadcast("pool_grow", {"n": n}, destination=destination, timeout=timeout, **options)


def pool_shrink(
    n: int = 1, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, **options: Any
) -> list[Reply]:
    return broadcast("pool_shrink", {"n": n}, destination=destination, timeout=timeout, **options)


def shutdown(destination: list[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> list[Reply]:
    """Ask workers for a warm shutdown: they stop fetching, finish what runs, and exit."""
    return broadcast("shutdown", destination=destination, timeout=timeout, **options)


def enable_events(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers to write task and worker events from now on (until they stop), as -E would."""
    return broadcast("enable_events", destination=destination, timeout=timeout)


def disable_events(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers to stop writing events (until they stop, or enable_events)."""
    return broadcast("disable_events", destination=destination, timeout=timeout)


def _known(task_name: str) -> None:
    if registry.get(task_name) is None:
        raise NotRegistered(task_name)
