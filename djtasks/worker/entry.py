"""Where a child starts: a forked process (prefork) or a thread of the worker's process (threads, solo)."""

from __future__ import annotations

import os
import signal
import threading
from multiprocessing.connection import Connection

from django.db import connections

from djtasks.calling import signals
from djtasks.core.conf import Settings
from djtasks.worker import checkpoints, output
from djtasks.worker.child import Child, request_early_stop
from djtasks.worker.protocol import ChildLimits


def child_main(
    index: int, worker_id: str, queues: list[str], pipe: Connection, limits: ChildLimits, config: Settings
) -> None:
    """Entry point of a forked child; returns (and the process exits) when asked to stop."""
    # The fork copied the parent's handlers; a child must never run them (they signal "children").
    signal.signal(signal.SIGTERM, request_early_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    output.reopen_in_child(index + 1)  # --logfile=%n%I.log: a file per child
    signals.worker_process_init.emit()
    checkpoints.leave_to_the_parent()
    try:
        Child(index, worker_id, queues, pipe, limits, config).run()
        pipe.close()
    finally:
        signals.worker_process_shutdown.emit(pid=os.getpid(), exitcode=0)
        connections.close_all()


def thread_main(
    index: int,
    worker_id: str,
    queues: list[str],
    pipe: Connection,
    limits: ChildLimits,
    config: Settings,
    stop: threading.Event,
) -> None:
    """Entry point of a child in a thread (threads and solo pools); returns when `stop` is set."""
    checkpoints.leave_to_the_parent()
    try:
        Child(index, worker_id, queues, pipe, limits, config, stop).run()
        pipe.close()
    finally:
        connections.close_all()
