"""An unexpected exception in one step of a worker's loops is logged and the loop goes on.

Faults are injected into real worker subprocesses (tests/support/inject.py): the parent keeps
extending leases, enforcing time limits and answering control; a child keeps its pid, hands
back what it held, and sets aside a message that always breaks it.
"""

import json
import os
import signal
import time

import psutil
import pytest

from djtasks import control
from djtasks.core.conf import get_settings
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.inject import ENV
from tests.support.ledger import read
from tests.support.waiting import wait_for
from tests.testapp.tasks import hang, work

pytestmark = [pytest.mark.django_db(transaction=True)]


def faults(*entries):
    return {ENV: json.dumps([dict(zip(("target", "calls", "match"), entry, strict=False)) for entry in entries])}


def starts(ledger, key):
    return sum(1 for e in read(ledger) if e.kind == "start" and e.key == key)


def test_the_parent_keeps_leases_limits_and_control_going_when_its_steps_raise(worker, ledger):
    proc = worker(
        "-c",
        "2",
        env=faults(
            ("djtasks.worker.duties:Duties._heartbeat", "all"),  # every heartbeat write raises
            ("djtasks.worker.maintenance:reap", "all"),
            ("djtasks.worker.supervisor:Worker._supervise", [3, 5, 8]),
            ("djtasks.worker.supervisor:Worker._enforce_time_limits", [1, 2, 4]),
        ),
    )
    long = work.delay("long", get_settings().LEASE_SECONDS + 3)  # outlives an unextended lease
    hung = hang.delay("hung")  # time_limit=1: the parent must kill it
    assert long.get(timeout=40) == "long"
    assert starts(ledger, "long") == 1
    assert wait_for(lambda: TaskRecord.objects.get(pk=hung.id).state == "FAILURE", timeout=20)
    assert TaskRecord.objects.get(pk=hung.id).exception_type == "djtasks.exceptions.TimeLimitExceeded"
    wid = proc.name
    assert control.ping(destination=[wid], timeout=10)[0].ok
    assert proc.process.poll() is None
    log = proc.log()
    assert "unexpected error in heartbeat" in log and "unexpected error in reaping" in log
    assert "unexpected error in supervising children" in log and "InjectedFault" in log


def test_a_child_whose_round_raises_hands_back_what_it_held_and_keeps_its_pid(worker, ledger):
    proc = worker("-c", "1", env=faults(("djtasks.worker.start:Starter.start", [1, 3])))
    assert wait_for(lambda: len(proc.children()) == 1, timeout=20)
    [child] = proc.children()
    results = [work.delay(f"k{i}") for i in range(6)]
    assert [r.get(timeout=30) for r in results] == [f"k{i}" for i in range(6)]
    assert all(starts(ledger, f"k{i}") == 1 for i in range(6))
    assert proc.children() == [child]
    assert "unexpected error in a round of claiming and running" in proc.log()


def test_a_message_that_breaks_the_child_every_time_is_set_aside_after_max_deliveries(worker, ledger):
    proc = worker("-c", "1", env=faults(("djtasks.worker.start:Starter.start", "all", "cursed")))
    cursed = work.apply_async(("cursed",), task_id="cursed")
    assert wait_for(lambda: DeadLetter.objects.filter(task_id="cursed").exists(), timeout=60)
    letter = DeadLetter.objects.get(task_id="cursed")
    assert "unexpected error in the worker on each of its 5 deliveries" in letter.reason
    row = TaskRecord.objects.get(pk=cursed.id)
    assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.MessageRejected"
    assert wait_for(lambda: get_broker().known(["cursed"]) == [False], timeout=10)  # acked after the commit
    assert starts(ledger, "cursed") == 0
    assert work.delay("after").get(timeout=20) == "after" and proc.process.poll() is None


def test_the_children_of_a_sigkilled_parent_stop_instead_of_taking_work(worker, ledger):
    process = worker("-c", "2")
    assert wait_for(lambda: process.name in control.workers(), timeout=30)
    assert work.delay("before", 0).get(timeout=20) == "before"
    children = psutil.Process(process.pid).children()
    assert len(children) == 2
    os.kill(process.pid, signal.SIGKILL)  # the parent alone, as `kill -9 <pid>` does: nobody renews leases now
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"children {[c.pid for c in alive]} outlived their parent"
    later = work.delay("after", 0)
    time.sleep(2.0)
    assert TaskRecord.objects.get(pk=later.id).state == "PENDING" and starts(ledger, "after") == 0
