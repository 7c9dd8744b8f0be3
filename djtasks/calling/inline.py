"""Eager mode (DJTASKS["TASK_ALWAYS_EAGER"]): a new row runs in the caller's process once its transaction commits.

The row is written as always; instead of publishing its id to Redis, the commit runs it here,
through the worker's own executor (worker/eager.py, registered by the app's ready()), which records
its outcome, retries and workflow on the row as a worker would. Outside a transaction that is at
the call, so delay() returns a finished result. Inside transaction.atomic() it is on commit: a
rolled-back transaction runs nothing. The atomic blocks of Django's TestCase (and pytest-django's
`db` fixture) never commit, and count as committed here, as Django's durable check treats them.

Calls made while eager tasks run (a task's delay(), a chain's next step) wait in a queue and run
after the current one, in order, as a worker would take them: nothing nests, however long the chain.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from functools import partial

from django.db import transaction

from djtasks.core.conf import get_settings
from djtasks.core.exceptions import ImproperlyDeclared

# run(task_id, database alias) -> the error to raise to the caller under TASK_EAGER_PROPAGATES, or None.
Runner = Callable[[str, str], BaseException | None]
_runners: list[Runner] = []
_local = threading.local()


def set_runner(runner: Runner) -> None:
    """Install the executor eager calls run with (the worker's, from the app's ready())."""
    _runners[:] = [runner]


def eager() -> bool:
    return get_settings().TASK_ALWAYS_EAGER


def committed(using: str) -> bool:
    """Tell whether work done now is as good as committed: autocommit, or only a TestCase's atomic blocks."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return True
    return all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def schedule(task_id: str, using: str) -> None:
    """Run the row now if its transaction is (as good as) committed, else when it commits."""
    if not _runners:
        raise ImproperlyDeclared("TASK_ALWAYS_EAGER is set but djtasks is not in INSTALLED_APPS (no eager executor).")
    if committed(using):
        run(task_id, using)
    else:
        transaction.on_commit(partial(run, task_id, using), using=using)


def run(task_id: str, using: str) -> None:
    """Run the row, and whatever it enqueues, in order; raise the first error if TASK_EAGER_PROPAGATES."""
    waiting: deque[tuple[str, str]] = _local.__dict__.setdefault("waiting", deque())
    waiting.append((task_id, using))
    if getattr(_local, "draining", False):
        return  # the loop below, further up this thread's stack, takes it in its turn
    _local.draining = True
    first: BaseException | None = None
    try:
        while waiting:
            error = _runners[0](*waiting.popleft())
            first = first or error
    finally:
        _local.draining = False
        waiting.clear()
    if first is not None and get_settings().TASK_EAGER_PROPAGATES:
        raise first
