"""Loaded (through PYTHONPATH) by the processes tests/support/hosts.py runs under libfaketime.

libfaketime 0.9.10 (Debian 12) with FAKETIME_DONT_FAKE_MONOTONIC=1 makes every
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) fail with EINVAL, which is how Python's
time.sleep() waits: each sleep raised OSError (a worker child backing off from an unreachable
Redis died of it). Without that variable, libfaketime fakes the monotonic clock too and
threading's timed waits hang. So the monotonic clock stays real and time.sleep() waits in
select(), which libfaketime leaves alone; the wall clock (time.time()) stays faked.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
