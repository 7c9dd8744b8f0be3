"""A child process as its parent sees it: the pipe to it, the claims it holds, the task it executes."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from djtasks.transport.broker import Claim
from djtasks.worker.pool import ChildView
from djtasks.worker.pools import Handle
from djtasks.worker.protocol import Executing, Holding, Order, Released, Report, Skip, decode_report

logger = logging.getLogger("djtasks")


@dataclass
class Slot:
    index: int
    process: Handle
    reader: Connection
    running: dict[str, Claim] = field(default_factory=dict)
    processed: int = 0
    # The task the child is executing now: (id, monotonic start, hard time limit or None).
    executing: tuple[str, float, float | None] | None = None
    # Why the parent killed this child: (task id, exception class path, message).
    killed: tuple[str, str, str] | None = None

    def read(self) -> None:
        """Take in the child's reports until its pipe is empty; a broken pipe is closed."""
        if self.reader.closed:
            return
        try:
            while self.reader.poll():
                report = decode_report(self.reader.recv_bytes())
                if report is not None:
                    self._take(report)
        except (EOFError, OSError):
            self.reader.close()

    def _take(self, report: Report) -> None:
        match report:
            case Holding(claims=claims):
                for claim in claims:
                    self.running[claim.id] = claim
            case Executing(id=task_id, hard=hard):
                self.executing = (task_id, time.monotonic(), hard)
            case Released(ids=ids):
                for task_id in ids:
                    self.running.pop(task_id, None)
                    if self.executing and self.executing[0] == task_id:
                        self.executing = None
                self.processed += len(ids)

    def tell(self, order: Order) -> None:
        """Send the child an order; a child that is gone does not need it."""
        try:
            self.reader.send_bytes(order.encode())
        except OSError:
            pass

    def signal(self, signum: int) -> None:
        """Send the child a signal, unless it is gone (a child in a thread only hears stop requests)."""
        self.process.signal(signum)

    def revoke(self, task_id: str, *, terminate: bool) -> None:
        """Stop a task this child holds: kill the child if it runs it and terminate is asked, else skip it."""
        if task_id not in self.running:
            return
        if not (self.executing and self.executing[0] == task_id):
            self.tell(Skip((task_id,)))
        elif terminate and not self.process.killable:
            logger.warning(
                "Task id=%s revoked with terminate, but child %d is a thread, which cannot be killed: "
                "it runs on and its outcome is discarded",
                task_id,
                self.index,
            )
        elif terminate and self.killed is None:
            logger.warning("Task id=%s revoked with terminate: killing child %d", task_id, self.index)
            self.killed = (task_id, "djtasks.exceptions.Terminated", "revoked with terminate=True")
            self.signal(signal.SIGKILL)

    def view(self, now: float, *, retiring: bool) -> ChildView:
        """Describe the child for an inspection or a heartbeat (now: time.monotonic())."""
        task_id, began = (self.executing[0], self.executing[1]) if self.executing else (None, now)
        return ChildView(
            index=self.index,
            pid=self.process.pid,
            processed=self.processed,
            held=tuple(self.running.values()),
            executing=task_id,
            running_s=now - began,
            retiring=retiring,
        )
