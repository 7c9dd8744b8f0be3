"""Limits a child enforces on itself: the soft time limit, and its memory after each task."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from djtasks.core.exceptions import SoftTimeLimitExceeded

logger = logging.getLogger("djtasks")


@contextmanager
def soft_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded in the running code once `seconds` have passed.

    In a process's main thread (prefork children, the solo pool) SIGALRM interrupts the code at
    once. In another thread (the threads pool) no signal can reach it: the exception is set on the
    thread (PyThreadState_SetAsyncExc, as dramatiq does) and raised when it next runs Python code
    (a call or a return), so a blocking call (a sleep, a socket read) finishes first.
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        with _in_thread(seconds):
            yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise SoftTimeLimitExceeded(f"soft time limit ({seconds:g} s) exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Expired(SoftTimeLimitExceeded):
    """Raised in a thread past its soft limit: a class of its own per limit (an async exception has no arguments)."""

    seconds = 0.0

    def __init__(self, *args: object):
        super().__init__(*(args or (f"soft time limit ({self.seconds:g} s) exceeded",)))


@contextmanager
def _in_thread(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    lock = threading.Lock()
    inside = [True]

    expired = type("SoftTimeLimitExceeded", (_Expired,), {"seconds": seconds})

    def expire() -> None:
        with lock:
            if inside[0]:
                _set_async_exc(target, expired)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except _Expired as exc:  # its traceback kept: it shows where in the task's code the limit struck
        error = SoftTimeLimitExceeded(f"soft time limit ({seconds:g} s) exceeded")
        raise error.with_traceback(exc.__traceback__) from None
    finally:
        timer.cancel()
        with lock:
            inside[0] = False
            _set_async_exc(target, None)  # one set but not raised yet must not hit the caller


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def resident_kib() -> int:
    """Return this process's resident memory in KiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


_warned: set[str] = set()


def unenforced(task_name: str, hard: float) -> None:
    """Say once per task that its hard time limit cannot apply in a thread."""
    if task_name not in _warned:
        _warned.add(task_name)
        logger.warning(
            "Task %s has a hard time limit (%g s) that this pool cannot enforce: a thread cannot be "
            "killed (use --pool prefork); its soft limit still applies",
            task_name,
            hard,
        )
