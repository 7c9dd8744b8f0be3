"""Remote control of running workers: send a command, gather each worker's reply within a timeout.

Every function takes `destination` (worker ids such as "djtasks@host.1234"; None means every
live worker) and `timeout` (seconds), and returns one Reply per worker, in destination order.
A worker that does not answer in time gets a Reply with ok=False and "no reply from ... within
N s". `status()` reads the heartbeats and asks no worker anything. The admin calls these too.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from djtasks.calling.overrides import set_time_limit
from djtasks.calling.ratelimit import set_rate_limit
from djtasks.calling.revoke import revoke as revoke_task
from djtasks.core import registry
from djtasks.core.commands import INSPECTIONS
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import NotRegistered
from djtasks.transport.broker import get_broker

DEFAULT_TIMEOUT = 2.0


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
    """Describe every live worker from its heartbeat (no round trip to the workers)."""
    rows = []
    for worker_id, raw in sorted(get_broker().workers().items()):
        info = json.loads(raw)
        rows.append(
            {
                "worker": worker_id,
                "hostname": info.get("hostname"),
                "pid": info.get("pid"),
                "queues": info.get("queues"),
                "concurrency": info.get("concurrency"),
                "processed": info.get("processed"),
                # Tasks the worker holds: running, and reserved by its children but not begun.
                "held": len(info.get("active", [])),
                "started_at": info.get("started_at"),
                "heartbeat_at": info.get("heartbeat_at"),
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
    """Send a command to the destination workers (all live ones by default) and gather their replies."""
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    broker = get_broker()
    targets = list(dict.fromkeys(destination)) if destination else workers()
    if not targets:
        return []
    request_id = uuid.uuid4().hex
    deadline = time.time() + timeout
    message = {"cmd": command, "rid": request_id, "args": arguments or {}, "deadline": deadline}
    broker.send_controls(targets, message, ttl_s=int(timeout) + 60)
    replies: dict[str, Reply] = {}
    # Each wait is short enough to stay under the Redis socket timeout.
    longest = max(get_settings().SOCKET_TIMEOUT - 0.5, 0.1)
    try:
        while len(replies) < len(targets) and (left := deadline - time.time()) > 0:
            got = broker.wait_reply(request_id, min(left, longest))
            if got is None or got.get("worker") not in targets:
                continue
            worker_id = str(got["worker"])
            replies[worker_id] = Reply(worker_id, bool(got.get("ok")), got.get("data"), str(got.get("error", "")))
    finally:
        broker.forget_replies(request_id)
    return [replies.get(w) or Reply(w, False, error=f"no reply from {w} within {timeout:g} s") for w in targets]


def ping(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    return broadcast("ping", destination=destination, timeout=timeout)


def inspect(what: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers about their active, scheduled, reserved or registered tasks, stats or queues."""
    if what not in INSPECTIONS:
        raise ValueError(f"cannot inspect {what!r}; choose one of {', '.join(INSPECTIONS)}")
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
    return broadcast("add_consumer", {"queue": _queue(queue)}, destination=destination, timeout=timeout)


def cancel_consumer(
    queue: str, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[Reply]:
    return broadcast("cancel_consumer", {"queue": _queue(queue)}, destination=destination, timeout=timeout)


def pool_grow(n: int = 1, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    return broadcast("pool_grow", {"n": _count(n)}, destination=destination, timeout=timeout)


def pool_shrink(n: int = 1, *, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    return broadcast("pool_shrink", {"n": _count(n)}, destination=destination, timeout=timeout)


def shutdown(*, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
    """Ask workers for a warm shutdown: they stop fetching, finish what runs, and exit."""
    return broadcast("shutdown", destination=destination, timeout=timeout)


def _known(task_name: str) -> None:
    if registry.get(task_name) is None:
        raise NotRegistered(task_name)


def _queue(queue: str) -> str:
    if not queue or not queue.strip() or len(queue) > 100:
        raise ValueError(f"{queue!r} is not a queue name")
    return queue.strip()


def _count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of children must be a positive integer, not {n!r}")
    return n
