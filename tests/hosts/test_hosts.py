"""Workers on three hosts: network namespaces on this machine, each host's clock off by its own offset.

Redis and the database stay in the root namespace (tests/support/hosts.py). The promises under
test: nothing lost when a whole host dies or is cut off, what it ran is re-run elsewhere within
LEASE_SECONDS + REAP_INTERVAL, and the outcomes it writes late, after its lease was lost, are
fenced (the newer attempt's stand).
"""

import os
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings

from djtasks import publisher
from djtasks.core.conf import get_settings
from djtasks.models import TaskRecord
from djtasks.transport.broker import close_broker
from tests.support.hosts import Hosts
from tests.support.ledger import check, read, wait_all_done
from tests.support.waiting import wait_for
from tests.testapp.tasks import work

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(Hosts.unavailable()), reason=Hosts.unavailable() or ""),
]
OFFSETS = [-3.0, 0.0, 3.0]  # seconds each host's clock is off (libfaketime)
LEASE = settings.DJTASKS["LEASE_SECONDS"]
REAP = settings.DJTASKS["REAP_INTERVAL"]
# The row's lease is written on the holder's clock and read on the next worker's: a re-run may wait
# for up to the spread of the clocks beyond LEASE + REAP (README: "Many worker hosts").
SKEW = max(OFFSETS) - min(OFFSETS)
# A dead host's claim: its Redis lease ends within LEASE of the kill and a reap returns it within
# REAP; a claim that still meets the row's lease (on the dead host's clock, up to SKEW ahead) waits
# for it plus 1 s (worker/start.py).
BACK_IN_QUEUE = LEASE + REAP + SKEW + 1
# From the moment a returned task is first in line to its start: a child's claim of it, on a loaded machine.
CLAIM_ROUND = 2.0


@pytest.fixture
def hosts(tmp_path, request):
    with Hosts(3, offsets=OFFSETS) as made:
        server = made.redis()
        made.redis_url = f"redis://{made.gateway}:{server.port}/0"
        env = {}
        if connection.vendor == "postgresql":
            database = urlsplit(os.environ["DATABASE_URL"])
            host, port = made.relay(int(database.port))
            env["DATABASE_URL"] = database._replace(netloc=f"{database.username}@{host}:{port}").geturl()
        made.start = lambda host, *args: made.worker(host, made.redis_url, tmp_path, *args, env=env)
        close_broker()
        with override_settings(DJTASKS={**settings.DJTASKS, "REDIS_URL": server.url}):
            yield made
            publisher.flush()
        close_broker()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            for process in made.workers:
                print(f"--- worker {process.pid} log ---\n{process.log()[-4000:]}")


@pytest.mark.timeout(300)
def test_three_hosts_drain_5000_tasks_and_one_is_sigkilled_mid_drain(hosts, ledger, fault_report):
    keys = [f"k{i}" for i in range(5000)]
    with transaction.atomic():
        ids = [work.delay(key, 0.0).id for key in keys]
    publisher.flush()
    began = time.monotonic()
    processes = [hosts.start(host, "-c", "2") for host in range(3)]
    assert wait_for(lambda: sum(1 for e in read(ledger) if e.kind == "end") >= 1500, timeout=120)
    dead = hosts.pids(1)
    kill_began = time.time()
    hosts.kill(1)
    killed_at = time.time()
    assert wait_all_done(ids, timeout=240)
    drained_in = time.monotonic() - began
    offsets = hosts.offsets_by_pid()
    verdict = check(ledger, keys, ids, kills=[(kill_began, killed_at)], offsets=offsets)
    assert verdict.lost == [] and verdict.unexplained == []
    assert len(verdict.started_twice) <= 2 * get_settings().PREFETCH  # at most what the killed host's two children held
    # Recovery: from the kill to the last re-run elsewhere of what the dead host had started.
    entries = read(ledger, offsets)
    held = {e.key for e in entries if e.kind == "start" and e.pid in dead}
    reruns = [e.at for e in entries if e.kind == "start" and e.key in held and e.pid not in dead and e.at > killed_at]
    verdict.recovery_s = max(reruns) - killed_at if reruns else None
    # A re-run is back in its queue within BACK_IN_QUEUE of the kill, but behind the tasks that were
    # waiting there already (a returned id ranks by when it came back: transport/lua/reap.lua), so it
    # starts once the survivors have started those: within a claim's round of the later of the two.
    # (17.9 s was seen on PostgreSQL under load, where the backlog outlasted the lease.)
    backlog_started = max(e.at for e in entries if e.kind == "start" and e.key not in held) - killed_at
    assert verdict.recovery_s is None or verdict.recovery_s <= max(BACK_IN_QUEUE, backlog_started) + CLAIM_ROUND
    workers = set(TaskRecord.objects.filter(pk__in=ids).values_list("worker", flat=True))
    assert len(workers) == 3  # every host took part
    assert processes[0].process.poll() is None and processes[2].process.poll() is None
    fault_report(
        fault="3 hosts (clocks -3/0/+3 s), one SIGKILLed mid-drain",
        enqueued=len(ids),
        lost=0,
        ran_twice=len(verdict.started_twice),
        recovery_s=verdict.recovery_s,
        notes=f"5,000 drained in {drained_in:.1f} s; re-runs = what the dead host held, queued behind "
        f"a backlog started {backlog_started:.1f} s after the kill",
    )


@pytest.mark.timeout(300)
def test_a_host_cut_off_for_30_seconds_has_its_tasks_rerun_elsewhere_and_its_late_outcomes_fenced(
    hosts, ledger, fault_report
):
    # Host 2 alone consumes "far" at first, so it holds both tasks; the others join once it does.
    cut = hosts.start(2, "-c", "2", "-Q", "far")
    assert wait_for(lambda: len(cut.children()) == 2, timeout=60)
    keys = ["far0", "far1"]
    with transaction.atomic():
        # Longer than LEASE + REAP: the re-runs start while the cut host still runs its copies.
        ids = [work.apply_async((key, 20.0), queue="far").id for key in keys]
    publisher.flush()
    cut_pids = hosts.pids(2)
    assert wait_for(lambda: {e.key for e in read(ledger) if e.kind == "start"} == set(keys), timeout=30)
    others = [hosts.start(host, "-c", "2", "-Q", "far") for host in (0, 1)]
    for process in others:
        assert wait_for(lambda p=process: len(p.children()) == 2, timeout=60)
    hosts.cut(2)
    cut_at = time.time()
    time.sleep(30)
    hosts.restore(2)
    assert wait_all_done(ids, timeout=120)
    # The cut host's copies ended while it was cut off; give it a lease to try to write them.
    time.sleep(LEASE)
    offsets = hosts.offsets_by_pid()
    entries = read(ledger, offsets)
    verdict = check(ledger, keys, ids, offsets=offsets)
    assert verdict.lost == []
    first = {e.key: e.pid for e in entries if e.kind == "start" and e.pid in cut_pids}
    assert set(first) == set(keys)  # the cut host held both
    reruns = {e.key: e.at for e in entries if e.kind == "start" and e.pid not in cut_pids}
    assert set(reruns) == set(keys)  # each ran again on another host
    rerun_after = max(reruns.values()) - cut_at
    # The cut host's clock is the one furthest ahead (+3 s) and a re-run's may be 3 s behind.
    assert rerun_after <= LEASE + REAP + SKEW + 3  # scheduling slack on a shared 2-core machine
    # Both copies ran to their end (the cut host's, off the network): the documented window.
    assert verdict.completed_twice == keys
    # Fenced: the rows carry the re-runs' outcomes (attempt 2, another worker); the cut host's
    # late writes changed nothing.
    cut_worker = cut.name
    rows = TaskRecord.objects.in_bulk(ids)
    assert all(row.state == "SUCCESS" and row.worker != cut_worker and row.attempts == 2 for row in rows.values())
    assert "lost its lease" in cut.log() or "no longer held" in cut.log()
    assert cut.process.poll() is None  # and the cut host's worker lives on, back at work
    fault_report(
        fault="a host cut off 30 s holding leases (20 s tasks)",
        enqueued=len(ids),
        lost=0,
        ran_twice=len(verdict.started_twice),
        recovery_s=rerun_after,
        notes="re-ran on other hosts; the cut host's late outcomes fenced (its side effects ran: the window)",
    )
