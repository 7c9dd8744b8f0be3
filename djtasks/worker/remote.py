"""The worker's side of remote control: answer commands, change queues and pool size, emit worker events.

The parent reads its control list every tick and hands each message here, decoded and checked
against core.commands (arguments of the right type and range, or Refused with the reason); a
reply goes to the request's reply list, where djtasks.control waits for it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from functools import partial
from typing import Any

from djtasks.calling.overrides import read_time_limits
from djtasks.core import registry
from djtasks.core.commands import COMMANDS, INSPECTIONS, Command, Refused
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.transport import telemetry
from djtasks.transport.broker import get_broker
from djtasks.worker import inspections
from djtasks.worker.pool import Pool

logger = logging.getLogger("djtasks")


class CommandError(Exception):
    """A command this worker refuses; its message is the reply."""


class Remote:
    def __init__(self, pool: Pool):
        self.pool = pool
        self.commands: dict[str, Callable[..., Any]] = {
            "ping": self.do_ping,
            "inspect": self.do_inspect,
            "time_limit": self.do_time_limit,
            "rate_limit": self.do_rate_limit,
            "add_consumer": self.do_add_consumer,
            "cancel_consumer": self.do_cancel_consumer,
            "pool_grow": self.do_pool_grow,
            "pool_shrink": self.do_pool_shrink,
            "shutdown": self.do_shutdown,
            "enable_events": self.do_enable_events,
            "disable_events": self.do_disable_events,
            "revoke": self.do_revoke,
        }
        assert set(self.commands) == set(COMMANDS), "every command of core.commands has a handler"
        self.inspections: dict[str, Callable[[], Any]] = {
            "active": partial(inspections.active, pool),
            "scheduled": partial(inspections.scheduled, pool),
            "reserved": partial(inspections.reserved, pool),
            "registered": partial(inspections.registered, pool),
            "stats": partial(inspections.stats, pool),
            "queues": partial(inspections.queues, pool),
        }
        assert tuple(self.inspections) == INSPECTIONS, "every inspection of core.commands has a handler"

    # Worker events ------------------------------------------------------------------------

    def online(self) -> None:
        pool = self.pool
        self._event(
            "worker-online",
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=pool.queues,
            concurrency=pool.concurrency,
            pool=pool.pool_kind,
        )

    def beat(self, info: dict[str, Any]) -> None:
        self._event(
            "worker-heartbeat",
            processed=info["processed"],
            active=len(info["active"]),
            queues=info["queues"],
            concurrency=info["concurrency"],
        )

    def offline(self) -> None:
        self._event("worker-offline", processed=sum(child.processed for child in self.pool.children()))

    def _event(self, kind: str, **fields: Any) -> None:
        telemetry.emit(get_broker(), self.pool.config, kind, worker=self.pool.worker_id, **fields)

    # Commands -----------------------------------------------------------------------------

    def answer(self, message: Command | Refused) -> None:
        """Carry out a control message and push the reply; a refused one gets an error reply (never raises)."""
        worker_id = self.pool.worker_id
        if isinstance(message, Refused):
            logger.warning("Worker %s refused control message %s: %s", worker_id, message.name, message.reason)
            self._reply(message.request_id, message.name, {"worker": worker_id, "ok": False, "error": message.reason})
            return
        after = None
        try:
            data = self.commands[message.name](**message.args)
            if isinstance(data, tuple):
                data, after = data
            payload: dict[str, Any] = {"worker": worker_id, "ok": True, "data": data}
        except CommandError as exc:
            payload = {"worker": worker_id, "ok": False, "error": str(exc)}
        except Exception as exc:  # a command must not take the parent down (database or Redis errors)
            logger.exception("Worker %s failed to carry out control command %r", worker_id, message.name)
            payload = {"worker": worker_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if message.name != "revoke":
            logger.info(
                "Worker %s control %r: %s", worker_id, message.name, "ok" if payload["ok"] else payload["error"]
            )
        self._reply(message.request_id, message.name, payload)
        if after is not None:
            after()

    def _reply(self, request_id: str | None, name: str, payload: dict[str, Any]) -> None:
        if request_id is None:
            return
        try:
            get_broker().reply(request_id, payload)
        except BrokerUnavailable as exc:
            logger.warning("Reply to control command %s not sent (%s)", name, exc)
        except (TypeError, ValueError) as exc:  # data JSON cannot hold (a cycle): say so instead
            logger.exception("Reply to control command %s could not be encoded", name)
            self._reply(request_id, name, {"worker": payload["worker"], "ok": False, "error": f"bad reply: {exc}"})

    def do_ping(self) -> str:
        return "pong"

    def do_inspect(self, what: str) -> Any:
        return self.inspections[what]()

    def do_revoke(self, id: str, terminate: bool) -> None:
        self.pool.revoke(id, terminate=terminate)

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
        queues = self.pool.queues
        if queue in queues:
            return f"already consuming from {queue!r}"
        self.pool.set_queues([*queues, queue])
        return f"now consuming from {queue!r}"

    def do_cancel_consumer(self, queue: str) -> str:
        queues = self.pool.queues
        if queue not in queues:
            raise CommandError(f"not consuming from {queue!r}")
        if len(queues) == 1:
            raise CommandError(f"{queue!r} is the only queue of this worker; add another one first")
        self.pool.set_queues([q for q in queues if q != queue])
        return f"no longer consuming from {queue!r}"

    def do_pool_grow(self, n: int = 1) -> str:
        if self.pool.stopping:
            raise CommandError("the worker is shutting down")
        most = self.pool.config.MAX_CONCURRENCY
        if self.pool.concurrency + n > most:
            raise CommandError(f"cannot grow the pool by {n} from {self.pool.concurrency}: MAX_CONCURRENCY is {most}")
        self.pool.grow(n)
        return f"pool grown by {n} to {self.pool.concurrency}"

    def do_pool_shrink(self, n: int = 1) -> str:
        serving = [child for child in self.pool.children() if not child.retiring]
        if n >= len(serving):
            raise CommandError(f"cannot stop {n} of {len(serving)} children: at least one must stay")
        # Idle children first, then the most recently added ones.
        chosen = sorted(serving, key=lambda child: (child.executing is not None, -child.index))[:n]
        self.pool.retire([child.index for child in chosen])
        return f"pool shrunk by {n} to {self.pool.concurrency} (stopping children {sorted(c.index for c in chosen)})"

    def do_enable_events(self) -> str:
        if self.pool.config.ENABLE_EVENTS:
            return "task events already enabled"
        self.pool.set_events(True)
        return "task events enabled"

    def do_disable_events(self) -> str:
        if not self.pool.config.ENABLE_EVENTS:
            return "task events already disabled"
        self._event("worker-offline", reason="events disabled")  # watchers know why it falls silent
        self.pool.set_events(False)
        return "task events disabled"

    def do_shutdown(self) -> tuple[str, Any]:
        return "warm shutdown started", self.pool.request_warm_stop
