"""The pools a worker runs its children in: prefork (forked processes), threads, or solo (the main thread).

Every child runs the same claim, lease and record machinery (worker/child.py) and talks to the
parent over the same pipe; only what carries it differs. The supervisor sees each child through a
Handle: start it, ask whether it lives, wait for it, signal it.

- prefork: a forked process per child (the default). SIGKILL kills it, so hard time limits and
  revoke(terminate=True) work.
- threads: a thread per child, in the worker's process. A thread cannot be killed: hard time
  limits and terminate cannot apply (the worker refuses --time-limit with this pool; a task's own
  hard limit is not enforced, with a warning), and soft time limits are raised in the thread
  when it next runs Python code (a blocking call is not interrupted).
- solo: one child in the worker's main thread (tasks can be debugged with pdb; soft time limits
  use SIGALRM as in prefork); the supervisor runs in a helper thread. Nothing can kill it either.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from django.db import connections

from djtasks.transport.broker import close_broker

logger = logging.getLogger("djtasks")
POOLS = ("prefork", "threads", "solo")


class Handle(Protocol):
    """A child as the supervisor drives it, whatever carries it."""

    killable: bool

    @property
    def pid(self) -> int | None: ...

    @property
    def sentinel(self) -> int: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def signal(self, signum: int) -> None:
        """SIGTERM and SIGINT ask for a warm stop; SIGKILL kills it where it can be killed."""


class ProcessHandle:
    """A forked child process."""

    killable = True

    def __init__(self, process: BaseProcess):
        self.process = process

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.process.join(timeout)

    def signal(self, signum: int) -> None:
        if self.process.pid is not None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass


class ThreadHandle:
    """A child that runs in a thread of this process (or, for solo, in its main thread)."""

    killable = False

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str):
        self.target, self.args, self.name = target, args, name
        self.stop = threading.Event()  # a warm stop, asked before or while the child runs
        self.started = threading.Event()
        self.finished = threading.Event()
        self._exitcode: int | None = None
        self._read, self._write = os.pipe()  # readable (EOF) once the child has finished
        self._closed = False

    @property
    def pid(self) -> int | None:
        return os.getpid()

    @property
    def sentinel(self) -> int:
        return self._read

    @property
    def exitcode(self) -> int | None:
        return self._exitcode

    def run(self) -> None:
        """Run the child here, in the calling thread; record how it ended."""
        self.started.set()
        code = 1
        try:
            self.target(*self.args, self.stop)
            code = 0
        except BaseException:
            logger.exception("Child %s ended with an error", self.name)
        finally:
            self._exitcode = code
            self.finished.set()
            os.close(self._write)

    def is_alive(self) -> bool:
        return self.started.is_set() and not self.finished.is_set()

    def join(self, timeout: float | None = None) -> None:
        if self.started.is_set():
            self.finished.wait(timeout)
        if self.finished.is_set() and not self._closed:
            self._closed = True
            os.close(self._read)

    def signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stop.set()
        elif signum == signal.SIGKILL and self.is_alive():
            logger.warning("Child %s runs in a thread, which cannot be killed; it stops after its task", self.name)
            self.stop.set()


def run_forked(target: Callable[..., None], *args: Any) -> None:
    """A forked child's first step: put what it inherited out of the cyclic collector's reach, then run."""
    # Each collection writes the header of every object it scans, so the first that scanned the
    # parent's objects would copy their pages; a frozen object is never scanned (it is still freed
    # when its last reference goes). Cost: a cycle inherited as garbage lives as long as the child.
    gc.freeze()
    target(*args)


class Pool:
    """How children are carried: spawn one, given its pipe end and the arguments of its entry point."""

    kind = "prefork"

    def __init__(self, context: ForkContext):
        self.context = context
        self.frozen = False

    def pipe(self) -> tuple[Connection, Connection]:
        ours, theirs = self.context.Pipe(duplex=True)
        return ours, theirs

    def spawn(self, index: int, target: Callable[..., None], args: tuple[Any, ...], theirs: Connection) -> Handle:
        # A forked child must not share the parent's database or Redis sockets.
        connections.close_all()
        close_broker()
        if not self.frozen:
            # Once, before the first fork: the parent's own collections then never scan (and so
            # never write) the pages it shares with its children. Only what exists at start-up is
            # frozen, so a parent that respawns children often does not keep its later garbage.
            gc.freeze()
            self.frozen = True
        process = self.context.Process(target=run_forked, args=(target, *args), name=f"djtasks-child-{index}")
        process.start()
        theirs.close()
        return ProcessHandle(process)


class ThreadPool(Pool):
    kind = "threads"

    def spawn(self, index: int, target: Callable[..., None], args: tuple[Any, ...], theirs: Connection) -> Handle:
        handle = ThreadHandle(target, args, f"{index} (thread)")
        thread = threading.Thread(target=handle.run, name=f"djtasks-child-{index}", daemon=True)
        handle.started.set()  # alive from now on, as a started process is
        thread.start()
        return handle


class SoloPool(Pool):
    """One child, run by the main thread (serve()); the supervisor's loop runs in another thread."""

    kind = "solo"

    def __init__(self, context: ForkContext):
        super().__init__(context)
        self.waiting: queue.Queue[ThreadHandle] = queue.Queue()

    def spawn(self, index: int, target: Callable[..., None], args: tuple[Any, ...], theirs: Connection) -> Handle:
        handle = ThreadHandle(target, args, f"{index} (main thread)")
        handle.started.set()
        self.waiting.put(handle)
        return handle

    def serve(self, supervisor: threading.Thread) -> None:
        """Run each child spawned, here in the main thread, until the supervisor's thread ends."""
        while supervisor.is_alive() or not self.waiting.empty():
            try:
                handle = self.waiting.get(timeout=0.1)
            except queue.Empty:
                continue
            handle.run()


def make_pool(kind: str, context: ForkContext) -> Pool:
    return {"prefork": Pool, "threads": ThreadPool, "solo": SoloPool}[kind](context)
