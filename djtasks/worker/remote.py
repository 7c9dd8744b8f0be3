"""The worker's side of remote control: answer commands, change queues and pool size, emit worker events.

The parent reads its control list every tick and hands each command here; a reply goes to the
request's reply list, where djtasks.control waits for it.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from djtasks.calling.overrides import read_time_limits
from djtasks.core import registry
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport import telemetry
from djtasks.transport.broker import get_broker

if TYPE_CHECKING:
    from djtasks.worker.supervisor import Slot, Worker

logger = logging.getLogger("djtasks")
INSPECTIONS = ("active", "scheduled", "reserved", "registered", "stats", "queues")


class CommandError(Exception):
    """A command this worker refuses; its message is the reply."""


class Remote:
    def __init__(self, worker: Worker):
        self.worker = worker
        # Children asked to stop by pool_shrink: they are not replaced when they exit.
        self.retiring: set[int] = set()

    # Worker events ------------------------------------------------------------------------

    def online(self) -> None:
        w = self.worker
        self._event("worker-online", hostname=socket.gethostname(), pid=os.getpid(), queues=w.queues,
                    concurrency=w.concurrency)

    def beat(self, info: dict[str, Any]) -> None:
        self._event("worker-heartbeat", processed=info["processed"], active=len(info["active"]),
                    queues=info["queues"], concurrency=info["concurrency"])

    def offline(self) -> None:
        self._event("worker-offline", processed=sum(slot.processed for slot in self.worker.slots.values()))

    def _event(self, kind: str, **fields: Any) -> None:
        telemetry.emit(get_broker(), self.worker.config, kind, worker=self.worker.worker_id, **fields)

    # Commands -----------------------------------------------------------------------------

    def answer(self, command: dict[str, Any]) -> None:
        """Carry out a command and push the reply, unless its sender stopped waiting long ago."""
        name, request_id = str(command.get("cmd")), command.get("rid")
        deadline = command.get("deadline")
        if isinstance(deadline, int | float) and time.time() > deadline:
            logger.info("Worker %s dropped control command %r: its sender stopped waiting", self.worker.worker_id,
                        name)
            return
        handler = getattr(self, f"do_{name}", None) if name.isidentifier() else None
        try:
            if handler is None:
                raise CommandError(f"unknown command {name!r}")
            data, after = handler(**(command.get("args") or {})), None
            if isinstance(data, tuple):
                data, after = data
            payload: dict[str, Any] = {"worker": self.worker.worker_id, "ok": True, "data": data}
        except (CommandError, TypeError, ValueError) as exc:
            after, payload = None, {"worker": self.worker.worker_id, "ok": False, "error": str(exc)}
        except Exception as exc:  # a command must not take the parent down (database or Redis errors)
            logger.exception("Worker %s failed to carry out control command %r", self.worker.worker_id, name)
            error = f"{type(exc).__name__}: {exc}"
            after, payload = None, {"worker": self.worker.worker_id, "ok": False, "error": error}
        logger.info("Worker %s control %r: %s", self.worker.worker_id, name,
                    "ok" if payload["ok"] else payload["error"])
        if isinstance(request_id, str):
            try:
                get_broker().reply(request_id, payload)
            except BrokerUnavailable as exc:
                logger.warning("Reply to control command %r not sent (%s)", name, exc)
        if after is not None:
            after()

    def do_ping(self) -> str:
        return "pong"

    def do_inspect(self, what: str) -> Any:
        if what not in INSPECTIONS:
            raise CommandError(f"cannot inspect {what!r}; choose one of {', '.join(INSPECTIONS)}")
        return getattr(self, f"_inspect_{what}")()

    def do_time_limit(self, task: str) -> dict[str, Any]:
        soft, hard = read_time_limits(get_broker()).get(task, (None, None))
        return {"task": task, "soft": soft, "hard": hard, "note": "children apply it within 1 s"}

    def do_rate_limit(self, task: str, rate: str) -> dict[str, Any]:
        spacing = get_broker().rate_override(task)
        declared = getattr(registry.get(task), "rate_limit", None)
        if spacing is None:
            return {"task": task, "rate": f"declared ({declared or 'no limit'})"}
        return {"task": task, "rate": f"{rate} (one start every {spacing:g} ms)" if spacing else "no limit"}

    def do_add_consumer(self, queue: str) -> str:
        w = self.worker
        if queue in w.queues:
            return f"already consuming from {queue!r}"
        w.queues = [*w.queues, queue]
        self._tell_children({"queues": w.queues})
        return f"now consuming from {queue!r}"

    def do_cancel_consumer(self, queue: str) -> str:
        w = self.worker
        if queue not in w.queues:
            raise CommandError(f"not consuming from {queue!r}")
        if len(w.queues) == 1:
            raise CommandError(f"{queue!r} is the only queue of this worker; add another one first")
        w.queues = [q for q in w.queues if q != queue]
        self._tell_children({"queues": w.queues})
        return f"no longer consuming from {queue!r}"

    def do_pool_grow(self, n: int = 1) -> str:
        w = self.worker
        if not isinstance(n, int) or n < 1:
            raise CommandError("pool_grow needs a positive number of children")
        if w.stop_requested_at is not None:
            raise CommandError("the worker is shutting down")
        for _ in range(n):
            w._spawn(max([*w.slots, *self.retiring], default=-1) + 1)
        w.concurrency += n
        return f"pool grown by {n} to {w.concurrency}"

    def do_pool_shrink(self, n: int = 1) -> str:
        w = self.worker
        if not isinstance(n, int) or n < 1:
            raise CommandError("pool_shrink needs a positive number of children")
        serving = [slot for slot in w.slots.values() if slot.index not in self.retiring]
        if n >= len(serving):
            raise CommandError(f"cannot stop {n} of {len(serving)} children: at least one must stay")
        # Idle children first, then the most recently added ones.
        chosen: list[Slot] = sorted(serving, key=lambda slot: (slot.executing is not None, -slot.index))[:n]
        for slot in chosen:
            self.retiring.add(slot.index)
            if slot.process.pid is not None:
                os.kill(slot.process.pid, signal.SIGTERM)  # warm: it finishes its task, hands back the rest
        w.concurrency -= n
        return f"pool shrunk by {n} to {w.concurrency} (stopping children {sorted(s.index for s in chosen)})"

    def do_shutdown(self) -> tuple[str, Any]:
        w = self.worker
        return "warm shutdown started", lambda: w._on_stop_signal(signal.SIGTERM, None)

    # Inspections ----------------------------------------------------------------------------

    def _inspect_active(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        executing = {slot.executing[0]: (slot, now - slot.executing[1]) for slot in self.worker.slots.values()
                     if slot.executing}
        rows = _rows(self.worker.db, list(executing))
        return [{**rows.get(task_id, {"id": task_id}), "child": slot.index, "pid": slot.process.pid,
                 "running_s": round(seconds, 3)} for task_id, (slot, seconds) in executing.items()]

    def _inspect_reserved(self) -> list[dict[str, Any]]:
        held = {claim.id: slot for slot in self.worker.slots.values() for claim in slot.running.values()
                if not (slot.executing and slot.executing[0] == claim.id)}
        rows = _rows(self.worker.db, list(held))
        return [{**rows.get(task_id, {"id": task_id}), "child": slot.index} for task_id, slot in held.items()]

    def _inspect_scheduled(self) -> list[dict[str, Any]]:
        broker = get_broker()
        due = {task_id: (queue, at) for queue in self.worker.queues for task_id, at in broker.scheduled(queue)}
        rows = _rows(self.worker.db, list(due))
        return [{**rows.get(task_id, {"id": task_id}), "queue": queue,
                 "eta": datetime.fromtimestamp(at, tz=UTC).isoformat()}
                for task_id, (queue, at) in sorted(due.items(), key=lambda item: item[1][1])]

    def _inspect_registered(self) -> list[str]:
        return registry.names()

    def _inspect_stats(self) -> dict[str, Any]:
        w = self.worker
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "uptime_s": round((timezone.now() - w.started_at).total_seconds(), 1),
            "concurrency": w.concurrency,
            "queues": w.queues,
            "processed": sum(slot.processed for slot in w.slots.values()),
            "pool": [{"child": s.index, "pid": s.process.pid, "processed": s.processed, "held": len(s.running),
                      "retiring": s.index in self.retiring} for s in sorted(w.slots.values(), key=lambda s: s.index)],
            "limits": {"soft_time_limit": w.limits.soft_time_limit, "time_limit": w.limits.time_limit,
                       "max_tasks_per_child": w.limits.max_tasks, "max_memory_per_child": w.limits.max_memory_kib},
            "prefetch": w.config.PREFETCH,
            "rusage": {"utime_s": round(usage.ru_utime + children.ru_utime, 3),
                       "stime_s": round(usage.ru_stime + children.ru_stime, 3),
                       "parent_maxrss_kib": usage.ru_maxrss},
        }

    def _inspect_queues(self) -> list[dict[str, Any]]:
        depths = get_broker().queue_stats()
        empty = {"ready": 0, "scheduled": 0, "reserved": 0}
        return [{"name": queue, **depths.get(queue, empty)} for queue in self.worker.queues]

    def _tell_children(self, order: dict[str, Any]) -> None:
        data = json.dumps(order).encode()
        for slot in self.worker.slots.values():
            try:
                slot.reader.send_bytes(data)
            except OSError:
                pass


def _rows(db: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Read what the record says about these tasks (name, arguments, times), by id."""
    if not ids:
        return {}
    fields = ("id", "task_name", "queue", "args", "kwargs", "attempts", "started_at")
    return {row["id"]: row for row in TaskRecord.objects.using(db).filter(pk__in=ids).values(*fields)}
