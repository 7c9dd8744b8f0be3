"""Remote control of running workers: send a command, gather each worker's reply within a timeout.

Every function takes `destination` (worker names such as "w1@host"; None means every
live worker) and `timeout` (seconds), and returns one Reply per worker, in destination order.
A worker that does not answer in time gets a Reply with ok=False and "no reply from ... within
N s"; arguments are checked against core.commands before anything is sent (ValueError). `status()`
reads the heartbeats and asks no worker anything. The admin calls these too.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from djtasks.calling.overrides import set_time_limit
from djtasks.calling.ratelimit import set_rate_limit
from djtasks.calling.revoke import revoke as revoke_task
from djtasks.core import commands, registry
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import NotRegistered
from djtasks.transport.broker import get_broker

DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True)
class Reply:
    worker: str
    ok: bool
    data: Any = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        uptime = _number(info.get("uptime_s"))
        rows.append(
            {
                "worker": worker_id,
                "hostname": info.get("hostname"),
                "pid": info.get("pid"),
                "queues": _strings(info.get("queues")),
                "concurrency": info.get("concurrency"),
                "processed": info.get("processed"),
                # Tasks the worker holds: running, and reserved by its children but not begun.
                "held": len(_strings(info.get("active"))),
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
    *,
    destination: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Reply]:
    """Send a command to the destination workers (all live ones by default) and gather their replies.

    The arguments are checked first (ValueError). The command is valid for `timeout` seconds on
    Redis' clock: a worker reading it later drops it unanswered, whatever its own clock says.
    """
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    args = commands.arguments(command, arguments or {})
    broker = get_broker()
    targets = list(dict.fromkeys(destination)) if destination else workers()
    if not targets:
        return []
    request_id = uuid.uuid4().hex
    deadline = time.monotonic() + timeout  # the caller's own wait: one clock, this host's
    broker.send_controls(targets, {"cmd": command, "rid": request_id, "args": args}, timeout_s=timeout)
    replies: dict[str, Reply] = {}
    # Each wait is short enough to stay under the Redis socket timeout.
    longest = max(get_settings().SOCKET_TIMEOUT - 0.5, 0.1)
    try:
        while len(replies) < len(targets) and (left := deadline - time.monotonic()) > 0:
            got = broker.wait_reply(request_id, min(left, longest))
            if got is None or got["worker"] not in targets:
                continue
            worker_id = got["worker"]
            replies[worker_id] = Reply(worker_id, got["ok"], got["data"], got["error"])
    finally:
        broker.forget_replies(request_id)
    return [replies.get(w) or Reply(w, False, error=f"no reply from {w} within {timeout:g} s") for w in targets]


def ping(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    return broadcast("ping", destination=destination, timeout=timeout)


def inspect(what: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers about their active, scheduled, reserved or registered tasks, stats or queues."""
    return broadcast("inspect", {"what": what}, destination=destination, timeout=timeout)


def revoke(task_ids: list[str], *, terminate: bool = False) -> list[Reply]:
    """Revoke tasks (durably, in the database); the worker holding one is told by revocation.revoke."""
    return [Reply(task_id, True, revoke_task(task_id, terminate=terminate)) for task_id in task_ids]


def rate_limit(
    task_name: str, rate: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[Reply]:
    """Change a task's rate limit ("10/m"; "" or "none" for the declared one) for every worker."""
    _known(task_name)
    rate = rate.strip()
    if rate.lower() in {"", "none"}:
        set_rate_limit(task_name, None)
    else:
        set_rate_limit(task_name, rate)  # a bad rate raises ValueError before anything changes
    return broadcast("rate_limit", {"task": task_name, "rate": rate}, destination=destination, timeout=timeout)


def time_limit(
    task_name: str,
    soft: float | str | None,
    hard: float | str | None,
    *,
    destination: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Reply]:
    """Change a task's soft and hard time limits (seconds; 0 for none) for every worker."""
    _known(task_name)
    set_time_limit(task_name, soft, hard)
    return broadcast("time_limit", {"task": task_name}, destination=destination, timeout=timeout)


def add_consumer(queue: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    return broadcast("add_consumer", {"queue": _stripped(queue)}, destination=destination, timeout=timeout)


def cancel_consumer(
    queue: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[Reply]:
    return broadcast("cancel_consumer", {"queue": _stripped(queue)}, destination=destination, timeout=timeout)


def pool_grow(n: int = 1, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Start n more children in each worker (up to its MAX_CONCURRENCY)."""
    return broadcast("pool_grow", {"n": n}, destination=destination, timeout=timeout)


def pool_shrink(n: int = 1, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    return broadcast("pool_shrink", {"n": n}, destination=destination, timeout=timeout)


def shutdown(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers for a warm shutdown: they stop fetching, finish what runs, and exit."""
    return broadcast("shutdown", destination=destination, timeout=timeout)


def enable_events(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers to write task and worker events from now on (until they stop), as -E would."""
    return broadcast("enable_events", destination=destination, timeout=timeout)


def disable_events(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers to stop writing events (until they stop, or enable_events)."""
    return broadcast("disable_events", destination=destination, timeout=timeout)


def _known(task_name: str) -> None:
    if registry.get(task_name) is None:
        raise NotRegistered(task_name)


def _stripped(queue: Any) -> Any:
    return queue.strip() if isinstance(queue, str) else queue


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
