"""Arbitrary bytes in every Redis structure a worker or the web side reads, next to valid traffic.

One live `taskworker -c 2` serves the whole module. Each test writes what Hypothesis generates
into one family of structures (queued ids, envelopes, scheduled members and scores, in-flight,
owner and delivery hashes, the sequence, rate and time-limit overrides, counters, the events
stream, the queues set), with a valid task enqueued beside every example, then checks the
batch: the worker still answers ping; every bad item is accounted for, as a dead letter with
its escaped bytes and a reason, or as a skip the worker (or the web process) logged naming its
key; every valid task ran exactly once (the ledger); the metrics view, control.status() and the
admin dashboard answer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djtasks import control, publisher
from djtasks.models import DeadLetter
from djtasks.ops import events
from djtasks.transport import decode
from djtasks.transport.broker import get_broker
from tests.support import ledger as ledgers
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess
from tests.testapp.tasks import work

pytestmark = [pytest.mark.django_db(transaction=True)]
EXAMPLES = 60
WORK = "tests.testapp.tasks.work"
GENERATE = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

raw_ids = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b"\xff", b"a\x00b", b"", b"x" * 300, b"\xed\xa0\x80", b"new\nline", b"\\xff"]),
)
scores = st.floats(allow_nan=False)
garbage = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", b"nan", b"inf", b"-1", b"1e400", b"100", b"[1, 2]", b"[null, 5]", b'["a", "b", "c"]']),
)
not_a_number = st.binary(max_size=32).map(lambda raw: b"x" + raw)  # never a number, never JSON


@dataclass
class Live:
    worker: WorkerProcess
    ledger: Path
    worker_id: str


@pytest.fixture(scope="module")
def live(redis_server, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("redis-bytes")
    path = folder / "ledger.txt"
    path.touch()
    process = WorkerProcess(redis_server.url, folder, "-c", "2", env={"DJTASKS_LEDGER": str(path)}).start()
    yield Live(process, path, process.name)
    process.kill()


@dataclass
class Batch:
    """What one test wrote: valid tasks (by ledger key), and bad items with what accounts for them."""

    prefix: str
    family: str
    keys: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    letters: Counter[str] = field(default_factory=Counter)  # expected DeadLetter.task_id values
    skips: set[tuple[str, str]] = field(default_factory=set)  # (key, digest) the worker must log
    bad: int = 0
    seen: set[bytes] = field(default_factory=set)
    used: int = 0  # entries read as valid values (overrides, counters...)
    waiting: int = 0  # scheduled for later: they stay where they are
    logged: int = 0  # entries the web process skipped and logged
    verdict: ledgers.Verdict | None = None

    def unique(self, raw: bytes) -> bytes:
        """The raw id, or (if it came up before in this batch, and a copy could race the first) it + "~n"."""
        while raw in self.seen:
            raw += b"~%d" % len(self.seen)
        self.seen.add(raw)
        return raw

    def valid(self, before_commit=None) -> None:
        """Enqueue one ledger task (doing `before_commit` in its transaction, before it is published)."""
        key = f"{self.prefix}{len(self.keys)}"
        with transaction.atomic():
            self.ids.append(work.delay(key).id)
            if before_commit:
                before_commit(self.ids[-1])
        self.keys.append(key)

    def letter(self, raw: bytes) -> None:
        self.letters[expected_task_id(raw)] += 1
        self.bad += 1

    def skip(self, key: str, raw: bytes | str) -> None:
        if (key, decode.digest(raw)) not in self.skips:
            self.bad += 1
        self.skips.add((key, decode.digest(raw)))


def expected_task_id(raw: bytes) -> str:
    """The task_id of a queued id's dead letter: the id itself if it can be a row id, else its escape."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return decode.escaped(raw, limit=1024)[:255]
    if "\x00" in text or len(text) > 255:
        return decode.escaped(raw, limit=1024)[:255]
    return text


def queue(raw_id: bytes, envelope: bytes = b"2:0", *, score: float = 0.0, where: int = 0) -> None:
    """Put an id in one of the default queue's sets (0 ready, 1 scheduled, 2 in flight), with its envelope."""
    broker = get_broker()
    if envelope is not None:
        broker.client.hset(broker.queue_key("default", "messages"), raw_id, envelope)
    broker.client.zadd(broker.queue_key("default", ("ready", "scheduled", "inflight")[where]), {raw_id: score})
    broker.client.lpush(broker.wake_key("default"), "1")


def settle(live: Live, batch: Batch) -> None:
    """Check a batch: ping, every bad item accounted for, every valid task ran exactly once."""
    publisher.flush()
    assert ledgers.wait_all_done(batch.ids, timeout=60), "valid tasks did not all succeed"
    verdict = ledgers.check(live.ledger, batch.keys, batch.ids)
    assert verdict.lost == [] and verdict.started_twice == [] and verdict.completed_twice == []
    expected = +batch.letters

    def letters() -> Counter[str]:
        return Counter(DeadLetter.objects.filter(queue="default").values_list("task_id", flat=True))

    assert wait_for(lambda: letters() == expected, timeout=30), (expected - letters(), letters() - expected)
    for letter in DeadLetter.objects.all():
        assert letter.reason and "\x00" not in letter.task_id + letter.raw
    log = live.worker.log

    def logged() -> set[tuple[str, str]]:
        return {(key, digest) for key, digest in batch.skips if f"Skipped an entry of {key} (sha1 {digest})" in log()}

    assert wait_for(lambda: logged() == batch.skips, timeout=15), batch.skips - logged()
    [pong] = control.ping(destination=[live.worker_id], timeout=10)
    assert pong.ok and live.worker.process.poll() is None
    batch.verdict = verdict


def report(fault_report, batch: Batch) -> None:
    """Add the batch's row to the fault table printed at the end of the run."""
    assert batch.verdict is not None
    fault_report(
        fault=f"bytes in {batch.family}",
        enqueued=len(batch.ids),
        lost=len(batch.verdict.lost),
        ran_twice=len(batch.verdict.started_twice),
        notes=f"{sum(batch.letters.values())} dead-lettered, {len(batch.skips) + batch.logged} skipped and logged, "
        f"{batch.used} read as valid{f', {batch.waiting} still waiting (due later)' if batch.waiting else ''}; ping ok",
    )


def test_queued_ids_of_any_bytes_are_dead_lettered_and_acked(live, fault_report):
    batch = Batch("ids-", "queued ids (ready set)")
    broker = get_broker()

    @GENERATE
    @given(raw_ids, st.integers(-100, 100), scores)
    def write(raw, priority, score):
        raw = batch.unique(raw)
        queue(raw, f"2:{priority}".encode(), score=score)
        batch.letter(raw)
        batch.valid()

    write()
    settle(live, batch)
    ready, scheduled, inflight = (broker.queue_key("default", k) for k in ("ready", "scheduled", "inflight"))
    assert (
        broker.client.zcard(ready)
        == broker.client.zcard(inflight)
        == broker.client.hlen(broker.queue_key("default", "messages"))
        == 0
    )
    assert (
        broker.client.hlen(broker.queue_key("default", "deliveries")) == 0
    )  # acked: a restarted worker would not meet them again
    report(fault_report, batch)


def test_envelopes_of_any_bytes_are_dead_lettered_with_their_raw_bytes(live, fault_report):
    batch = Batch("env-", "envelopes")
    envelopes = st.one_of(
        st.binary(max_size=5000),
        st.fixed_dictionaries(
            {"v": st.sampled_from([1, 2, "1"]), "q": st.text(max_size=5), "p": st.one_of(st.integers(), st.floats())}
        ).map(lambda data: json.dumps(data).encode()),
    )
    raws: dict[str, bytes] = {}

    @GENERATE
    @given(envelopes)
    def write(envelope):
        task_id = f"garbage-{len(raws)}"
        raws[task_id] = envelope
        queue(task_id.encode(), envelope)
        batch.letter(task_id.encode())
        batch.valid()

    write()
    settle(live, batch)
    for letter in DeadLetter.objects.filter(task_id__startswith="garbage-"):
        if letter.reason.startswith("malformed message"):
            assert letter.raw == decode.escaped(raws[letter.task_id][:4097], limit=65536)
    report(fault_report, batch)


def test_scheduled_members_and_scores_of_any_value(live, fault_report):
    batch = Batch("sch-", "scheduled members and scores")
    broker = get_broker()
    key = broker.queue_key("default", "scheduled")
    now_ms = time.time() * 1000
    future: list[bytes] = []

    @GENERATE
    @given(
        raw_ids,
        st.sampled_from(["due", "due without a message", "later"]),
        st.floats(max_value=now_ms - 1000, allow_nan=False),
        st.floats(min_value=now_ms + 3_600_000),
    )
    def write(raw, kind, due, later):
        raw = batch.unique(raw)
        if kind == "later":
            queue(raw, None, score=later, where=1)  # not due for an hour or more: it waits
            future.append(raw)
            batch.waiting += 1
        elif kind == "due":
            queue(raw, b"2:0", score=due, where=1)
            batch.letter(raw)
        else:
            queue(raw, None, score=due, where=1)
            batch.skip(key, raw)  # due, but no message: dropped, and said so
        batch.valid()

    write()
    settle(live, batch)
    assert all(broker.client.zscore(key, raw) is not None for raw in future)
    listed = {task_id for task_id, _ in broker.scheduled("default", limit=1000)}
    assert listed <= {expected_task_id(raw) for raw in future}
    assert control.inspect("scheduled", destination=[live.worker_id], timeout=10)[0].ok
    report(fault_report, batch)


def test_in_flight_owner_delivery_and_sequence_values_of_any_bytes(live, fault_report):
    batch = Batch("fl-", "in-flight, owner, delivery and sequence values")
    broker = get_broker()
    inflight = broker.queue_key("default", "inflight")
    deliveries = broker.queue_key("default", "deliveries")
    broker.client.set(broker.queue_key("default", "seq"), b"not a number")

    @GENERATE
    @given(raw_ids, st.booleans(), garbage, garbage, not_a_number)
    def write(raw, stored, owner, count, recount):
        raw = batch.unique(raw)
        broker.client.hset(broker.queue_key("default", "owners"), raw, owner)
        broker.client.hset(deliveries, raw, count)
        queue(raw, b"2:0" if stored else None, score=-1.0, where=2)  # a lease that lapsed long ago
        if stored:
            batch.letter(raw)
        else:
            batch.skip(inflight, raw)
        # A valid task whose delivery count someone overwrote before its claim: counted afresh.
        batch.valid(lambda task_id: broker.client.hset(deliveries, task_id, recount))
        batch.skip(deliveries, batch.ids[-1])

    write()
    settle(live, batch)
    assert broker.client.zcard(inflight) == 0
    report(fault_report, batch)


def test_rate_and_time_limit_overrides_of_any_bytes(live, fault_report):
    batch = Batch("ovr-", "rate and time-limit overrides")
    broker = get_broker()
    rates, limits = broker.coordination_key("rl-overrides"), broker.coordination_key("timelimits")
    written: dict[str, set[bytes]] = {rates: set(), limits: set()}

    rate_values = st.one_of(st.sampled_from([b"100", b"0", b"2.5"]), garbage)
    pair_values = st.one_of(st.sampled_from([b"[1, 2]", b"[null, 5]", b"[0, null]"]), garbage)

    @GENERATE
    @given(st.binary(max_size=40), rate_values, pair_values, not_a_number, not_a_number)
    def write(name, rate, pair, work_rate, work_pair):
        broker.client.hset(rates, mapping={name: rate, WORK: work_rate})
        broker.client.hset(limits, mapping={name: pair, WORK: work_pair})
        written[rates].add(name)
        written[limits].add(name)
        time.sleep(0.03)  # children re-read the overrides every second: let some examples be seen
        batch.valid()

    write()
    time.sleep(1.1)  # children re-read the overrides at most every second: the last task sees them all
    batch.valid()
    for key in (rates, limits):
        batch.skip(key, WORK)  # its garbage is read (every claim of `work`), skipped and logged
    settle(live, batch)
    # Every entry is accounted for: read as an override, or skipped with a warning naming the key.
    taken = {rates: broker.rate_overrides(), limits: set(broker.time_limits())}
    log = live.worker.log()
    for key, names in written.items():
        for name in names:
            text = decode.text(name)
            used = text is not None and text != WORK and text in taken[key]
            assert used or f"Skipped an entry of {key} (sha1 {decode.digest(name)})" in log, (key, name)
            batch.used += used
            batch.logged += not used
    report(fault_report, batch)


def test_counters_events_and_queue_names_of_any_bytes_and_the_web_side_answers(
    live, fault_report, client, caplog, monkeypatch
):
    monkeypatch.setattr(decode, "_skips", decode._Skips())  # this process logs each skip afresh
    batch = Batch("web-", "counters, events, queue names (+ web side)")
    broker = get_broker()
    counters = [broker.stats_key(name) for name in ("done", "runtime", "wait")]
    work_done = json.dumps([WORK, "default", "SUCCESS"])

    @GENERATE
    @given(st.sampled_from(counters), garbage, garbage, garbage, garbage, not_a_number)
    def write(key, field_, value, queue_name, event, work_count):
        broker.client.hset(key, field_, value)
        broker.client.hset(counters[0], work_done, work_count)  # the field the worker increments next
        broker.client.sadd(broker.coordination_key("queues"), queue_name)
        broker.client.xadd(broker.events_key(), {"e": event})
        batch.valid()

    write()
    batch.skip(counters[0], work_done)  # the worker's increment met garbage: counted afresh, and said so
    settle(live, batch)

    def counted_afresh() -> bool:  # the counters go with the ack, sent after the outcome's commit: wait for it
        raw = broker.client.hget(counters[0], work_done)
        return raw is not None and raw.isdigit() and int(raw) >= 1

    assert wait_for(counted_afresh, timeout=15), broker.client.hget(counters[0], work_done)
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    assert client.get("/metrics/").status_code == 200
    assert client.get("/admin/djtasks/dashboard/").status_code == 200
    assert client.get("/admin/djtasks/dashboard/?partial=1").status_code == 200
    assert client.get("/admin/djtasks/taskrecord/").status_code == 200  # its queue filter reads the set
    assert isinstance(control.status(), list)
    assert control.inspect("queues", destination=[live.worker_id], timeout=10)[0].ok
    entries = broker.client.xrange(broker.events_key())
    found = events.read(broker, count=100_000)
    assert [events.line(event) for _, event in found]
    # Everything the web side read is accounted for: used, or skipped with a warning naming its key.
    skipped = caplog.text

    def accounted(key: str, entry: bytes | str, used: bool) -> None:
        assert used or f"Skipped an entry of {key} (sha1 {decode.digest(entry)})" in skipped, (key, entry)
        batch.used += used
        batch.logged += not used

    stats = dict(zip(counters, broker.read_stats(), strict=True))
    for key in counters:
        for field_ in broker.client.hkeys(key):
            labels, _ = decode.loads(field_)
            accounted(key, field_, isinstance(labels, list) and tuple(map(str, labels)) in stats[key])
    names = set(broker.queue_stats())
    for member in broker.client.smembers(broker.coordination_key("queues")):
        accounted(broker.coordination_key("queues"), member, decode.text(member) in names)
    read_ids = {entry_id for entry_id, _ in found}
    for entry_id, _ in entries:
        accounted(broker.events_key(), entry_id.decode(), entry_id.decode() in read_ids)
    report(fault_report, batch)
