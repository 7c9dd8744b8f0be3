"""Concurrency caps and keyed rate limits across real workers: never over the cap, each key at its own pace."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djtasks import publisher, set_rate_limit
from djtasks.calling.gates import START
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import Claim, get_broker
from djtasks.transport.limits import key_part
from djtasks.worker.caps import Caps
from djtasks.worker.ratelimit import Limiter
from djtasks.worker.verdicts import Wait
from tests.support import ledger as ledgers
from tests.support.ledger import wait_all_done
from tests.support.waiting import wait_for
from tests.testapp.gated_tasks import capped, capped_exiting_key, capped_per_customer, capped_two, per_customer

pytestmark = [pytest.mark.django_db(transaction=True)]


def intervals(path: Path, kill_at: float | None = None) -> dict[str, list[tuple[float, float]]]:
    """Each run's (start, end) by key; a run cut short by a kill ends at the kill."""
    runs: dict[str, list[tuple[float, float]]] = {}
    open_: dict[tuple[str, int], float] = {}
    for entry in ledgers.read(path):
        if entry.kind == "start":
            open_[(entry.key, entry.pid)] = entry.at
        else:
            runs.setdefault(entry.key, []).append((open_.pop((entry.key, entry.pid)), entry.at))
    for (key, _), began in open_.items():
        assert kill_at is not None, f"{key} started at {began} and never ended"
        runs.setdefault(key, []).append((began, kill_at))
    return runs


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end and a start at the same instant do not overlap)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    depth = peak = 0
    for _, step in events:
        depth += step
        peak = max(peak, depth)
    return peak


def all_spans(runs: dict[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    return [span for spans in runs.values() for span in spans]


def test_concurrency_1_never_overlaps_across_workers_and_waiters_are_woken(worker, ledger):
    worker("-c", "2")
    worker("-c", "2")
    results = [capped.delay(f"c{i}", 0.3) for i in range(8)]
    assert [r.get(timeout=60) for r in results] == [f"c{i}" for i in range(8)]
    runs = intervals(ledger)
    assert sorted(runs) == [f"c{i}" for i in range(8)] and all(len(spans) == 1 for spans in runs.values())
    assert most_at_once(all_spans(runs)) == 1
    # Woken when a slot frees, not when a parked waiter asks again (LEASE + REAP = 7 s here): no
    # run waits half of that after the one before it ends. Gaps, not the total, so that a loaded
    # machine's slower runs do not add up to a false failure.
    park = get_settings().LEASE_SECONDS + get_settings().REAP_INTERVAL
    spans = sorted(all_spans(runs))
    gaps = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    assert max(gaps) < park / 2, (
        f"a run began {max(gaps):.1f} s after the one before it ended: waiters waited to ask again"
    )
    assert not get_broker().client.hgetall(get_broker().queue_key("default", "deliveries"))  # parking was forgiven


def test_concurrency_2_runs_two_at_once_and_never_three(worker, ledger):
    worker("-c", "3")
    worker("-c", "3")
    results = [capped_two.delay(f"t{i}", 0.5) for i in range(8)]
    for r in results:
        r.get(timeout=60)
    assert most_at_once(all_spans(intervals(ledger))) == 2


def test_a_keyed_cap_serialises_each_key_and_lets_keys_run_side_by_side(worker, ledger):
    worker("-c", "2")
    worker("-c", "2")
    results = [capped_per_customer.delay(customer, f"{customer}{i}", 0.4) for i in range(3) for customer in "ab"]
    for r in results:
        r.get(timeout=60)
    runs = intervals(ledger)
    for customer in "ab":
        assert most_at_once([s for key, spans in runs.items() if key.startswith(customer) for s in spans]) == 1
    assert most_at_once(all_spans(runs)) == 2  # a's and b's ran at the same time
    row = TaskRecord.objects.get(pk=results[0].id)
    assert row.keys == {"concurrency": "a"}


def test_a_slot_held_by_a_killed_worker_comes_back_within_lease_and_reap(worker, ledger, fault_report):
    config = get_settings()
    doomed = worker("-c", "1")
    first = capped.delay("held", 3.0)
    assert wait_for(lambda: "start held" in ledger.read_text(), timeout=30)
    worker("-c", "2")  # the survivor; it parks the others while the doomed worker holds the slot
    rest = [capped.delay(f"after{i}", 0.2) for i in range(3)]
    time.sleep(0.5)
    killed_at = time.time()
    doomed.signal(signal.SIGKILL)
    doomed.kill()
    ids = [first.id] + [r.id for r in rest]
    assert wait_all_done(ids, timeout=90)
    runs = intervals(ledger, kill_at=killed_at)
    spans = all_spans(runs)
    assert most_at_once(spans) == 1  # the killed run's span ends at the kill
    back = min(start for start, _ in spans if start > killed_at) - killed_at
    limit = config.LEASE_SECONDS + config.REAP_INTERVAL
    assert back <= limit + 2.0, f"the slot came back {back:.1f} s after the kill (LEASE + REAP = {limit:g} s)"
    fault_report(
        fault="SIGKILL of a worker holding a concurrency=1 slot",
        enqueued=len(ids),
        lost=len(ids) - TaskRecord.objects.filter(pk__in=ids, state="SUCCESS").count(),
        ran_twice=len([k for k, s in runs.items() if len(s) > 1]),
        recovery_s=back,
        notes="slot back after the lease lapsed and was reaped; the killed task re-ran (at-least-once)",
    )


@contextmanager
def keyed_rate_grants(redis_url: str, task_name: str, keys: list[str]) -> Iterator[dict[str, list[int]]]:
    """Each grant of the task's keyed rate limit, by key, in ms of Redis' own clock.

    A grant is the script's SET of the key's bucket to (its TIME in ms) + interval; MONITOR shows
    the commands a script runs, so this reads the limiter's decisions themselves, not a worker's
    stamp taken after the reply (which a loaded machine delays by as much as it likes).
    """
    broker = get_broker()
    buckets = {broker.coordination_key("rlk", task_name, key_part(key)): key for key in keys}
    grants: dict[str, list[int]] = {key: [] for key in keys}
    watcher = redis.Redis.from_url(redis_url)
    stop = f"end-of-watch-{os.getpid()}-{time.monotonic_ns()}"
    ready = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                words = command["command"].split(" ")
                if words[0] == "ECHO" and words[1:] == [stop]:
                    return
                if command["client_type"] == "lua" and words[0] == "SET" and words[1] in buckets:
                    interval = int(words[4]) - 1000  # PX is the interval (ceiled) plus a second
                    grants[buckets[words[1]]].append(int(float(words[2])) - interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield grants
    finally:
        redis.Redis.from_url(redis_url).echo(stop)  # fed after every command run before it
        thread.join(10)
        watcher.close()


def test_two_keys_at_2_per_second_interleave_at_their_own_pace_across_2_workers(worker, ledger, redis_server):
    worker("-c", "2")
    worker("-c", "2")
    customers = ["acme", "globex"]
    with keyed_rate_grants(redis_server.url, per_customer.registered_name, customers) as grants:
        results = [per_customer.delay(customer, n) for n in range(5) for customer in customers]
        for r in results:
            r.get(timeout=60)
    assert len([entry for entry in ledgers.read(ledger) if entry.kind == "start"]) == 10  # each ran once
    for customer, times in grants.items():
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # 2/s is 500 ms between a key's starts, on the limiter's clock: no jitter to allow for.
        assert len(times) >= 5 and min(gaps) >= 500, (customer, times, gaps)
    acme, globex = grants["acme"], grants["globex"]
    assert acme[0] < globex[-1] and globex[0] < acme[-1]  # interleaved, not one key after the other
    # One task-wide bucket would keep every two starts 500 ms apart, whatever their keys.
    closest = min(abs(a - g) for a in acme for g in globex)
    assert closest < 400, f"starts of different keys were never closer than {closest} ms"
    # Each row's start is stamped by its worker after its grant: never before the key's first one.
    for args, at in TaskRecord.objects.filter(pk__in=[r.id for r in results]).values_list("args", "started_at"):
        assert at.timestamp() * 1000 >= grants[args[0]][0] - 1, (args, at)


def test_quiet_rate_keys_expire_from_redis(worker, ledger):
    worker("-c", "1")
    per_customer.delay("quiet", 0).get(timeout=30)
    broker = get_broker()
    assert broker.client.keys(broker.coordination_key("rlk", "*"))
    assert wait_for(lambda: not broker.client.keys(broker.coordination_key("rlk*")), timeout=5)  # 500 ms + 1 s


# Rows without stored keys, keys that fail, bytes nobody meant, Redis losing its data -----------------


def test_a_row_without_stored_keys_gets_them_in_the_worker(worker, ledger):
    """A row enqueued by name where the task is not declared carries no keys: the worker computes them."""
    worker("-c", "2")
    with transaction.atomic():
        results = [capped_per_customer.delay("k", f"k{i}", 0.3) for i in range(3)]
        TaskRecord.objects.filter(pk__in=[r.id for r in results]).update(keys=None)
    for r in results:
        r.get(timeout=30)
    assert most_at_once(all_spans(intervals(ledger))) == 1


def test_a_key_the_worker_cannot_compute_fails_the_task_and_the_worker_carries_on(worker, ledger):
    worker("-c", "1")
    with transaction.atomic():
        broken = capped_per_customer.delay("k", "broken", 0)
        TaskRecord.objects.filter(pk=broken.id).update(keys=None, args=[], kwargs={"unexpected": 1})
    with pytest.raises(Exception) as failed:
        broken.get(timeout=30)
    row = TaskRecord.objects.get(pk=broken.id)
    assert row.state == "FAILURE" and row.exception_type == "djtasks.exceptions.InvalidCall"
    assert "its concurrency_key cannot be computed: TypeError" in row.exception_message, failed.value
    assert DeadLetter.objects.filter(task_id=broken.id).exists()
    assert "broken" not in ledger.read_text()
    assert capped.delay("after", 0).get(timeout=30) == "after"


def test_a_key_function_raising_system_exit_in_the_worker_fails_only_its_task(worker, ledger):
    worker("-c", "1")
    with transaction.atomic():
        exiting = capped_exiting_key.delay("ok", "exiting")
        TaskRecord.objects.filter(pk=exiting.id).update(keys=None, args=["exit", "exiting"])
    with pytest.raises(Exception, match="SystemExit"):
        exiting.get(timeout=30)
    assert TaskRecord.objects.get(pk=exiting.id).attempts == 0  # set aside at once, not as poison
    assert capped_exiting_key.delay("ok", "fine").get(timeout=30) == "fine"


junk = st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"nan", b"inf", b'["default"]', b'["default", 1]']))


def test_bytes_nobody_meant_in_cap_and_rate_keys_do_not_stop_the_work(worker, ledger):
    worker("-c", "2")
    broker = get_broker()
    cap_slots = broker.queue_key("default", f"cap:{capped.registered_name}:-")
    cap_waiters = broker.queue_key("default", f"cap-wait:{capped.registered_name}:-")
    bucket = broker.coordination_key("rlk", per_customer.registered_name, key_part("acme"))
    rate_index = broker.coordination_key("rlk-keys", per_customer.registered_name)
    cap_index = broker.queue_key("default", f"cap-keys:{capped_per_customer.registered_name}")
    rounds = {"n": 0}

    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(junk, junk, st.floats(allow_nan=False), junk)
    def attempt(field, value, score, member):
        rounds["n"] += 1
        broker.client.hset(cap_slots, field or b"f", value)
        broker.client.zadd(cap_waiters, {member: score})
        broker.client.set(bucket, value)
        broker.client.zadd(rate_index, {member: score})
        broker.client.zadd(cap_index, {member: score})
        n = rounds["n"]
        results = [capped.delay(f"g{n}-{i}", 0.1) for i in range(2)] + [per_customer.delay("acme", n)]
        for r in results:
            assert r.get(timeout=30) is not None
        broker.rate_key_states(per_customer.registered_name)  # the admin's readers skip what they cannot read
        broker.cap_states(capped.registered_name, keyed=False)
        broker.cap_states(capped_per_customer.registered_name, keyed=True)

    attempt()
    spans = [span for key, s in intervals(ledger).items() if key.startswith("g") for span in s]
    assert len(spans) == 2 * rounds["n"] and most_at_once(spans) == 1


def test_after_redis_loses_its_data_caps_start_empty_and_nothing_is_lost(worker, ledger, redis_server, fault_report):
    worker("-c", "2")
    worker("-c", "2")
    first = [capped.delay(f"before{i}", 1.0) for i in range(3)]
    assert wait_for(lambda: "start before" in ledger.read_text(), timeout=30)
    redis_server.client().flushall()
    later = [capped.delay(f"after{i}", 0.3) for i in range(3)]
    ids = [r.id for r in first + later]
    assert wait_all_done(ids, timeout=90)
    runs = intervals(ledger)
    after = [span for key, spans in runs.items() if key.startswith("after") for span in spans]
    overlapping = most_at_once(all_spans(runs))
    # Beyond the attempts running when the data went, the cap holds again.
    assert most_at_once(after) == 1 and overlapping <= 2
    fault_report(
        fault="FLUSHALL while concurrency=1 tasks run",
        enqueued=len(ids),
        lost=0,
        ran_twice=len([k for k, s in runs.items() if len(s) > 1]),
        recovery_s=None,
        notes=f"caps rebuilt empty: at most {overlapping} ran at once, only with the attempt already running",
    )


def test_a_waiter_no_release_wakes_asks_again_after_lease_and_reap(worker, ledger):
    """Its holder's lease ended without a release (a time-limit kill, a revoke while reserved): it comes back."""
    broker = get_broker()
    holder = capped.delay("phantom", 0)
    publisher.flush()
    [claim] = broker.claim(["default"], "test", 60_000)
    held = broker.acquire_slot(capped.registered_name, None, 1, claim, 60_000)
    assert held == 1  # held by no worker that will release it
    worker("-c", "1")
    waiting = capped.delay("waiting", 0)
    waiters = broker.queue_key("default", f"cap-wait:{capped.registered_name}:-")
    assert wait_for(lambda: broker.client.zcard(waiters) == 1, timeout=30)
    # The holder's lease ends, nothing releases its slot.
    broker.client.hdel(broker.queue_key("default", "owners"), holder.id)
    ended = time.time()
    assert waiting.get(timeout=30) == "waiting"
    [run] = [e for e in ledgers.read(ledger) if e.kind == "start"]
    park = get_settings().LEASE_SECONDS + get_settings().REAP_INTERVAL
    assert run.at - ended <= park * 1.1 + 1.0


def test_a_runtime_rate_override_applies_to_every_key(worker, ledger):
    set_rate_limit(per_customer.registered_name, "0")  # lifted
    try:
        worker("-c", "2")
        results = [per_customer.delay("override", n) for n in range(4)]
        for r in results:
            r.get(timeout=30)
        starts = sorted(e.at for e in ledgers.read(ledger) if e.kind == "start")
        assert starts[-1] - starts[0] < 1.2  # "2/s" would take at least 1.5 s
    finally:
        set_rate_limit(per_customer.registered_name, None)


class Unreachable:
    """A broker whose every call fails as if Redis were down."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise BrokerUnavailable("Redis: ConnectionError: down")

        return fail


def test_without_redis_a_rate_limit_lets_the_task_start_and_a_cap_makes_it_wait():
    config = get_settings()
    limiter = Limiter(Unreachable())  # type: ignore[arg-type]
    limiter.read_at = time.monotonic()
    assert limiter.keyed_delay_ms(per_customer.registered_name, "acme", "2/s") == 0
    caps = Caps(Unreachable(), config, limiter)  # type: ignore[arg-type]
    record = TaskRecord(id="t", task_name=capped.registered_name, args=["k"], kwargs={})
    claim = Claim(id="t", envelope=b"2:0", deliveries=1, token="x", queue="default")
    verdict = caps.decide(capped, START[capped.registered_name], claim, record)
    assert isinstance(verdict, Wait) and "cannot reach Redis to take a concurrency slot" in verdict.why
