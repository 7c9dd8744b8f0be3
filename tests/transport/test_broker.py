"""The Redis protocol against a real redis-server: claim, ack, leases, delays, priorities."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.message import Message
from djtasks.transport import connection
from djtasks.transport.broker import close_broker, get_broker
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("redis_server")


def publish(*messages, due_ms=0):
    return get_broker().publish([(m, due_ms) for m in messages])


def test_publishing_twice_is_a_no_op():
    m = Message(id="t1", queue="default")
    assert publish(m) == 1
    assert publish(m) == 0
    assert get_broker().queue_stats()["default"]["ready"] == 1


def test_higher_priority_is_claimed_first_then_arrival_order():
    publish(
        Message("low", "default", -10),
        Message("a", "default", 0),
        Message("b", "default", 0),
        Message("high", "default", 50),
    )
    broker = get_broker()
    order = [broker.claim_one(["default"], f"w:{i}", 10_000).id for i in range(4)]
    assert order == ["high", "a", "b", "low"]
    assert broker.claim_one(["default"], "w:5", 10_000) is None


def test_within_a_priority_the_earliest_due_runs_first_and_arrivals_keep_their_order():
    """django.tasks' contract: among due tasks of one priority the earliest run_after starts first."""
    now = int(time.time() * 1000)
    publish(Message("z-now", "default"), Message("y-now", "default"), Message("x-now", "default"))
    publish(Message("hour-ago", "default"), due_ms=now - 3_600_000)
    publish(Message("ten-hours-ago", "default"), due_ms=now - 36_000_000)
    publish(Message("high-now", "default", 10))
    publish(Message("soon", "default"), due_ms=now + 200)
    broker = get_broker()
    first = [broker.claim_one(["default"], f"w:{i}", 10_000).id for i in range(6)]
    assert first == ["high-now", "ten-hours-ago", "hour-ago", "z-now", "y-now", "x-now"]
    time.sleep(0.3)
    publish(Message("after-soon", "default"))
    # Promoted when due, ranked by its due time: before what arrived after it became due.
    assert [broker.claim_one(["default"], f"v:{i}", 10_000).id for i in range(2)] == ["soon", "after-soon"]


def test_a_thousand_arrivals_of_one_publish_keep_their_order():
    ids = [f"t{i:04d}"[::-1] for i in range(1000)]  # reversed digits: the ids sort otherwise
    publish(*[Message(i, "default") for i in ids])
    claims = get_broker().claim(["default"], "w", 10_000, limit=1000, deep=0)
    taken = [c.id for c in claims]
    while len(taken) < len(ids):
        taken += [c.id for c in get_broker().claim(["default"], f"w{len(taken)}", 10_000, limit=1000, deep=0)]
    assert taken == ids


def test_a_claim_is_owned_until_acked_and_only_the_owner_can_ack():
    publish(Message("t", "default"))
    broker = get_broker()
    claim = broker.claim_one(["default"], "w1", 10_000)
    assert claim.deliveries == 1 and claim.token == "w1.0:1"
    assert broker.queue_stats()["default"] == {"ready": 0, "scheduled": 0, "reserved": 1}
    forged = type(claim)(id=claim.id, envelope=claim.envelope, deliveries=1, token="other:1", queue="default")
    assert broker.ack(forged) is False
    assert broker.ack(claim) is True
    assert broker.known(["t"]) == [False]


def test_a_copy_of_a_reserved_id_is_dropped_not_run_twice():
    broker = get_broker()
    publish(Message("t", "default"))
    first = broker.claim_one(["default"], "w1", 10_000)
    broker.client.zadd(broker.queue_key("default", "ready"), {"t": 0})  # a forced duplicate
    assert broker.claim_one(["default"], "w2", 10_000) is None
    assert broker.ack(first)


def test_an_expired_lease_is_reaped_back_to_the_queue():
    broker = get_broker()
    publish(Message("t", "default"))
    claim = broker.claim_one(["default"], "w1", 50)
    time.sleep(0.1)
    assert broker.reap(["default"]) == ["t"]
    again = broker.claim_one(["default"], "w2", 10_000)
    assert again.id == "t" and again.deliveries == 2
    assert broker.ack(claim) is False  # the first owner lost its lease


def test_extend_keeps_a_lease_alive_and_reports_lost_ones():
    broker = get_broker()
    publish(Message("t", "default"), Message("u", "default"))
    t = broker.claim_one(["default"], "w1", 200)
    u = broker.claim_one(["default"], "w1b", 200)
    broker.client.hset(broker.queue_key("default", "owners"), "u", "someone-else")
    assert broker.extend([t, u], 10_000) == ["u"]
    time.sleep(0.3)
    assert broker.reap(["default"]) == ["u"]


def test_delayed_messages_wait_until_due():
    broker = get_broker()
    due = int(time.time() * 1000) + 300
    publish(Message("later", "default"), due_ms=due)
    assert broker.queue_stats()["default"]["scheduled"] == 1
    assert broker.claim_one(["default"], "w", 10_000) is None
    time.sleep(0.35)
    assert broker.claim_one(["default"], "w", 10_000).id == "later"


def test_release_returns_a_claim_and_can_forgive_the_delivery():
    broker = get_broker()
    publish(Message("t", "default", 3))
    claim = broker.claim_one(["default"], "w1", 10_000)
    assert broker.release(claim, priority=3, forgive=True)
    again = broker.claim_one(["default"], "w2", 10_000)
    assert again.deliveries == 1


def test_queues_are_consumed_in_the_order_given():
    publish(Message("a", "one"), Message("b", "two"))
    broker = get_broker()
    assert broker.claim_one(["two", "one"], "w", 10_000).id == "b"


def test_wait_for_work_wakes_on_publish():
    broker = get_broker()
    assert broker.wait_for_work(["default"], 0.05) is False
    publish(Message("t", "default"))
    assert broker.wait_for_work(["default"], 1) is True


def test_a_deep_queue_is_claimed_in_batches_and_a_shallow_one_one_at_a_time():
    broker = get_broker()
    publish(*[Message(f"t{i}", "default") for i in range(10)])
    batch = broker.claim(["default"], "w", 10_000, limit=4, deep=3)
    assert [c.id for c in batch] == ["t0", "t1", "t2", "t3"]
    assert len({c.token for c in batch}) == 4
    batch = broker.claim(["default"], "w2", 10_000, limit=4, deep=3)
    assert [c.id for c in batch] == ["t4", "t5", "t6"]  # stops while 3 remain for others
    assert len(broker.claim(["default"], "w3", 10_000, limit=4, deep=3)) == 1


def test_the_oldest_waiting_id_is_found_across_priority_bands():
    publish(
        Message("first-low", "default", -100),
        Message("then-high", "default", 100),
        Message("mid", "default", 3),
        Message("newest-high", "default", 100),
    )
    broker = get_broker()
    assert broker.oldest_ready("default") == "first-low"
    broker.claim_one(["default"], "w:1", 10_000)  # takes then-high
    assert broker.oldest_ready("default") == "first-low"
    assert broker.oldest_ready("empty") is None


def test_scripted_pipelines_take_one_round_trip_and_survive_a_script_flush():
    broker = get_broker()
    publish(Message("warm", "default"))
    broker.client.config_resetstat()
    publish(Message("a", "default"), Message("b", "default"))
    claims = broker.claim(["default"], "w", 10_000, limit=3, deep=0)
    assert broker.ack_many(claims) == [True] * len(claims)
    stats = broker.client.info("commandstats")
    # No SCRIPT EXISTS before each pipeline (the claim script's own EXISTS of a queue's pause flag is fine).
    assert not any("script" in name and "exists" in name for name in stats), stats
    broker.client.script_flush()
    assert publish(Message("c", "default")) == 1  # NOSCRIPT: loaded again, sent again
    [claim] = broker.claim(["default"], "w2", 10_000)
    assert claim.id == "c" and broker.ack_many([claim]) == [True]


def test_a_lock_left_without_an_expiry_lapses_instead_of_stopping_its_duty_forever(redis_server):
    broker = get_broker()
    key = broker.coordination_key("lock", "sweep")
    redis_server.client().set(key, b"\xffnot-a-worker")  # no TTL: not a lock djtasks wrote
    assert broker.acquire("sweep", "w1", 200) is False
    # It was given an expiry of at most 200 ms: it has one left, or (on a loaded machine, more than
    # 200 ms later) it is gone. -1 (no expiry) is what the defect was.
    ttl = redis_server.client().pttl(key)
    assert ttl == -2 or 0 < ttl <= 200, ttl
    assert wait_for(lambda: broker.acquire("sweep", "w1", 200), timeout=5)


def test_a_batch_claim_over_two_queues_is_one_round_trip_and_takes_the_first_queue_first(monkeypatch):
    broker = get_broker()
    publish(*[Message(f"a{i}", "one") for i in range(3)], *[Message(f"b{i}", "two") for i in range(3)])
    trips = []
    original, original_raw = type(broker.client).pipeline, connection.send_raw

    def pipeline(self, *args, **kwargs):
        trips.append(1)
        return original(self, *args, **kwargs)

    def send_raw(*args, **kwargs):
        trips.append(1)
        return original_raw(*args, **kwargs)

    monkeypatch.setattr(type(broker.client), "pipeline", pipeline)
    monkeypatch.setattr(connection, "send_raw", send_raw)
    claims = broker.claim(["two", "one"], "w", 10_000, limit=2, deep=0)
    assert len(trips) == 1
    assert [c.id for c in claims] == ["b0", "b1", "a0", "a1"]
    assert len({c.token for c in claims}) == 4  # tokens differ between the queues of one round
    trips.clear()
    one = broker.claim(["empty", "one"], "w2", 10_000, limit=1)
    assert [c.id for c in one] == ["a2"] and len(trips) == 2  # one at a time: asked in turn


def test_a_queue_whose_keys_were_lost_alone_is_noticed_by_its_epoch_marker(redis_server):
    broker = get_broker()
    publish(Message("t", "lonely"))
    assert broker.ensure_epoch("first", ["default"]) is True  # new: every marker written
    assert broker.ensure_epoch("again", ["default"]) is False
    # One cluster master lost its data: only the lonely queue's keys are gone.
    redis_server.client().delete(*[broker.queue_key("lonely", kind) for kind in ("ready", "messages", "epoch")])
    assert broker.ensure_epoch("third", ["default"]) is True  # found through the set of queue names


@pytest.mark.parametrize("how", ["first connection", "restart"])
def test_a_publish_sent_without_waiting_arrives_though_redis_lacks_the_script(redis_server, how):
    """A Redis that never saw the publish script (new, or restarted) must not refuse a publish sent
    without waiting: its NOSCRIPT reply would be read only at the thread's next publish (seconds or
    hours later, replaying it then) and meanwhile the task would wait for the outbox sweep."""
    broker = get_broker()
    if how == "restart":
        broker.publish_nowait([(Message("before", "default"), 0)])
        broker.flush_publishes()
        redis_server.stop()
        redis_server.start()  # empty, without scripts
        # What is sent on the dead connection is the outbox sweep's (test_enqueue); reading its
        # reply finds the connection gone, and the next publish makes a new one.
        broker.publish_nowait([(Message("lost", "default"), 0)])
        with pytest.raises(BrokerUnavailable):
            broker.flush_publishes()
    else:
        close_broker()
        redis_server.client().script_flush()
        broker = get_broker()
    broker.publish_nowait([(Message("sent", "default"), 0)])
    deadline = time.monotonic() + 2
    while broker.known(["sent"], "default") != [True] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert broker.known(["sent"], "default") == [True]  # without another publish from this thread


def test_a_reserve_of_no_queues_waits_as_asked_and_still_sends_its_acks():
    """A caller with no queues (a child whose queue list became empty) must not claim again at once
    in a loop: before, reserve() returned at once whatever `wait` said."""
    broker = get_broker()
    publish(Message("held", "default"))
    [claim] = broker.claim(["default"], "w:1", 10_000)
    began = time.monotonic()
    reserved = broker.reserve([], "w:2", 10_000, acks=[claim], wait=0.3)
    assert reserved.claims == [] and reserved.idle_s is None
    assert time.monotonic() - began >= 0.3
    assert broker.queue_stats()["default"]["reserved"] == 0  # the ack went out
    began = time.monotonic()
    broker.reserve([], "w:3", 10_000, wait=0.0005)  # under 1 ms: work is due now, no wait
    assert time.monotonic() - began < 0.1


_IDS = st.sampled_from("abcdefgh")
_MESSAGES = st.lists(st.tuples(_IDS, st.integers(-2, 2), st.sampled_from(["now", "past", "later"])), max_size=8)
_RUNS = st.lists(st.tuples(st.integers(-2, 2), st.lists(_IDS, max_size=6)), max_size=3)


@settings(max_examples=40, deadline=None)
@given(known=st.sets(_IDS, max_size=3), messages=_MESSAGES, runs=_RUNS)
def test_one_publish_of_grouped_ids_stores_what_publishing_each_alone_would(known, messages, runs):
    # The publish script takes ids in groups alike (priority, due time) and stores them a
    # thousand a command; a bulk() block's calls are one run. Whatever the mix (ids twice, ids
    # Redis knows, past and future due times, priorities), the queue must end as if each message
    # had been published alone, messages then runs, in order: the same ids known with the same
    # envelopes, the same claim order and due times, and the same count newly published.
    broker, client = get_broker(), get_broker().client
    client.flushall()
    now = int(time.time() * 1000)
    due = {"now": 0, "past": now - 3_600_000, "later": now + 3_600_000}

    def state(queue):
        strip = len(queue) + 1
        key = broker.queue_key
        ready = [m.decode()[strip:] for m in client.zrange(key(queue, "ready"), 0, -1)]
        later = {m.decode()[strip:]: s for m, s in client.zrange(key(queue, "scheduled"), 0, -1, withscores=True)}
        envelopes = {k.decode()[strip:]: v for k, v in client.hgetall(key(queue, "messages")).items()}
        return ready, later, envelopes

    added = {}
    for queue in ("grouped", "alone"):
        for i in sorted(known):
            broker.publish([(Message(f"{queue}-{i}", queue), 0)])
        items = [(Message(f"{queue}-{i}", queue, priority), due[when]) for i, priority, when in messages]
        queue_runs = [(queue, priority, [f"{queue}-{i}" for i in ids]) for priority, ids in runs]
        if queue == "grouped":
            added[queue] = broker.publish(items, queue_runs)
        else:
            items += [(Message(i, queue, priority), 0) for _, priority, ids in queue_runs for i in ids]
            added[queue] = sum(broker.publish([item]) for item in items)
    assert added["grouped"] == added["alone"]
    assert state("grouped") == state("alone")


def test_the_broker_follows_the_settings_the_options_and_the_process():
    """get_broker() answers a repeat call from its last broker (broker.py's _last): never for other
    settings, other REDIS_OPTIONS (changed in place too) or another process."""
    from unittest import mock

    from django.conf import settings as django_settings
    from django.test import override_settings

    first = get_broker()
    assert get_broker() is first
    base = django_settings.DJTASKS
    with override_settings(DJTASKS={**base, "PREFIX": "other-prefix"}):
        other = get_broker()
        assert other is not first and other.prefix != first.prefix and get_broker() is other
    assert get_broker().prefix == first.prefix
    options: dict = {}
    with override_settings(DJTASKS={**base, "REDIS_OPTIONS": options}):
        empty = get_broker()
        options["socket_timeout"] = 5.0  # in place: the same settings object, other options
        changed = get_broker()
        assert changed is not empty and changed.config.REDIS_OPTIONS == {"socket_timeout": 5.0}
        assert get_broker() is changed
        options.clear()
        assert get_broker() is not changed
    now = get_broker()
    with mock.patch("os.getpid", return_value=-1):  # as in a forked child
        assert get_broker() is not now
    close_broker()
    assert get_broker() is not now
