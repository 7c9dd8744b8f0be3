"""--logfile and --pidfile: where a worker writes its output, and the file that holds its pid.

--logfile sends the worker's stdout and stderr (its log lines, tracebacks, what tasks print) to a
file, expanded like -n (worker/naming.py). With %i or %I in it, each prefork child writes to its
own file (%i: 1..N, %I: "-1".."-N"; the parent 0 and ""): Celery's `--logfile=%n%I.log`.
--pidfile holds the parent's pid from the start to the exit; a pid file naming a live process
refuses a second worker, a stale one (its process is gone) is replaced.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from djtasks.worker.naming import expand, split


class _Log:
    template: str | None = None
    name: str = ""
    host: str | None = None


def redirect(template: str, node: str) -> str:
    """Send this process's stdout and stderr to the expanded log file; return its path."""
    _Log.template = template
    _Log.name, host = split(node)
    _Log.host = host or None
    return _redirect(0)


def reopen_in_child(index: int) -> None:
    """In a forked child: switch to the child's own log file when the template names the child."""
    template = _Log.template
    if template and ("%i" in template or "%I" in template):
        _redirect(index)


def _redirect(index: int) -> str:
    assert _Log.template is not None
    path = expand(_Log.template, host=_Log.host, name=_Log.name, index=index)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return path


class PidfileTaken(Exception):
    """The pid file names a live process."""


def pid_in(path: str) -> int | None:
    """The pid a pid file holds, or None (missing, empty, not a number)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pidfile_path(template: str, node: str) -> str:
    name, host = split(node)
    return os.path.abspath(expand(template, host=host or None, name=name))


def refuse_taken(template: str | None, node: str) -> None:
    """Raise PidfileTaken if the pid file names another process that runs (nothing without a template)."""
    if not template:
        return
    path = pidfile_path(template, node)
    holder = pid_in(path)
    if holder is not None and holder != os.getpid() and alive(holder):
        raise PidfileTaken(f"pid file {path} names process {holder}, which is running")


@contextmanager
def pidfile(template: str | None, node: str) -> Iterator[str | None]:
    """Hold a pid file while the block runs (nothing when no template is given)."""
    if not template:
        yield None
        return
    refuse_taken(template, node)
    path = pidfile_path(template, node)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(partial, path)
    try:
        yield path
    finally:
        if pid_in(path) == os.getpid():
            os.unlink(path)
