"""--autoscale follows the queue's depth; --reload restarts the worker when its code changes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from djtasks import control
from tests.support.waiting import wait_for
from tests.testapp import tasks
from tests.testapp.tasks import add, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True)]


def concurrency() -> int | None:
    rows = control.status()
    return rows[0]["concurrency"] if rows else None


def test_autoscale_grows_while_work_waits_and_shrinks_after_the_cooldown(worker, ledger):
    process = worker("--autoscale", "3,1", "--autoscale-cooldown", "2")
    assert wait_for(lambda: concurrency() == 1, timeout=30), "it starts at its minimum"
    results = [sleep_then_record.delay(f"t{i}", 2) for i in range(6)]
    assert wait_for(lambda: concurrency() == 3, timeout=20), process.log()
    assert len(psutil.Process(process.pid).children()) == 3
    assert [r.get(timeout=60) for r in results] == [f"t{i}" for i in range(6)]
    assert wait_for(lambda: concurrency() == 1, timeout=20), process.log()
    assert wait_for(lambda: len(psutil.Process(process.pid).children()) == 1, timeout=20)
    assert "pool grown by" in process.log() and "pool shrunk by" in process.log()
    assert add.delay(1, 1).get(timeout=20) == 2


def test_reload_restarts_the_worker_when_a_module_changes(worker):
    process = worker("--reload", "-c", "1")
    assert wait_for(lambda: control.status(), timeout=30), process.log()
    first = control.status()[0]["pid"]
    assert first != process.pid, "the worker runs in a process the reloader restarts"
    assert add.delay(1, 2).get(timeout=20) == 3
    source = Path(tasks.__file__)
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 5))  # a save, as an editor makes it
    try:
        assert wait_for(lambda: (control.status() or [{}])[0].get("pid") not in (None, first), timeout=30), (
            process.log()
        )
    finally:
        os.utime(source, (stat.st_atime, stat.st_mtime))
    assert "changed: the worker stops warmly and starts again" in process.log()
    assert add.delay(2, 3).get(timeout=20) == 5
    second = control.status()[0]["pid"]
    process.signal(signal.SIGTERM)  # to the outer process: passed on to the worker
    assert process.wait(timeout=30) == 0
    assert wait_for(lambda: not psutil.pid_exists(second), timeout=10)
