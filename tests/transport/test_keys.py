"""Key names and hash slots: every script call touches one slot, and queues spread over slots.

On a Redis Cluster a script whose keys hash to two slots is refused (CROSSSLOT), so every script
the broker sends must take keys of one queue, or coordination keys only. Here every command the
broker writes to a socket is recorded while it does all it does, and each EVALSHA's keys are
hashed as the cluster would hash them.
"""

import time
from collections import Counter

import pytest
from redis.connection import AbstractConnection
from redis.crc import key_slot

from djtasks.core.message import Message
from djtasks.transport import connection
from djtasks.transport.broker import get_broker
from djtasks.transport.keys import LEGACY_KINDS, Keys

pytestmark = pytest.mark.usefixtures("redis_server")


@pytest.fixture
def sent(monkeypatch):
    """Every command packed for a socket, as a tuple of bytes."""
    commands = []

    def encoded(args):
        return tuple(a if isinstance(a, bytes) else str(a).encode() for a in args)

    original_one, original_many = AbstractConnection.pack_command, AbstractConnection.pack_commands

    def pack_command(self, *args):
        commands.append(encoded(args))
        return original_one(self, *args)

    def pack_commands(self, many):
        many = list(many)
        commands.extend(encoded(args) for args in many)
        return original_many(self, many)

    monkeypatch.setattr(AbstractConnection, "pack_command", pack_command)
    monkeypatch.setattr(AbstractConnection, "pack_commands", pack_commands)
    original_raw = connection._pack_command  # batches and publishes packed by hiredis (connection.pack)

    def pack_raw(argv):
        packed = original_raw(argv)  # what hiredis refuses is packed (and recorded) by pack_commands
        commands.append(encoded(argv))
        return packed

    monkeypatch.setattr(connection, "_pack_command", pack_raw)
    return commands


def script_keys(commands):
    return [args[3 : 3 + int(args[2])] for args in commands if args[0].upper() in (b"EVALSHA", b"EVAL")]


def exercise(broker):
    """Do everything the broker does on the hot path and in its duties, over three queues."""
    queues = ["default", "hipri", "mail"]
    broker.publish([(Message(f"t{i}", queues[i % 3], i % 5), 0) for i in range(12)])
    broker.publish([(Message("later", "mail"), int(time.time() * 1000) + 60_000)])
    broker.publish_nowait([(Message("nowait", "hipri"), 0)])
    broker.flush_publishes()
    claims = broker.claim(queues, "w", 10_000, limit=4, deep=0)
    claims += broker.claim(queues, "w2", 10_000, limit=1)
    assert broker.extend(claims, 10_000) == []
    # Issue 21's limits: a cap held, a second claim of the same queue parked, then woken.
    holder, parked = [c for c in claims if c.queue == claims[0].queue][:2]
    assert broker.acquire_slot("some.task", None, 1, holder, 1000) == 1
    assert broker.acquire_slot("some.task", None, 1, parked, 1000) == 0
    assert broker.release_slot("some.task", None, holder) == parked.id
    assert broker.acquire_slot("keyed.task", "acme", 1, holder, 1000) == 1
    broker.cap_states("some.task", keyed=False)
    broker.cap_states("keyed.task", keyed=True)
    broker.take_keyed_rate_slot("some.task", "acme", 100.0)
    broker.rate_key_states("some.task")
    broker.reschedule("mail", "later", int(time.time() * 1000) + 90_000)
    broker.note_duplicate("t1")
    broker.duplicates("t1")
    claims.remove(parked)
    broker.release(claims.pop(), priority=0)
    broker.ack_many(claims, also=[("HINCRBY", broker.stats_key("done"), "x", 1)])
    short = broker.claim(["hipri"], "w3", 1)
    time.sleep(0.01)
    assert [c.id for c in short] == broker.reap(queues)
    broker.oldest_ready("default")
    broker.take_rate_slot("some.task", 100.0)
    broker.redis_time()
    broker.pop_control("w")
    broker.ensure_epoch("e", queues)
    broker.adopt_legacy()


def test_every_script_call_touches_one_hash_slot(sent):
    broker = get_broker()
    exercise(broker)
    calls = script_keys(sent)
    assert len(calls) >= 22
    for keys in calls:
        assert len({key_slot(k) for k in keys}) == 1, keys
    # Several queues' calls went out, each in its own queue's slot.
    queue_tag = ("{" + broker.prefix + ":").encode()
    slots = Counter(key_slot(keys[0]) for keys in calls if keys[0].startswith(queue_tag))
    assert len(slots) == 3


def test_each_queue_has_a_hash_tag_of_its_own_and_coordination_keys_share_one():
    keys = Keys("djtasks")
    queue_slots = {key_slot(keys.queue_key(f"queue-{i}", "ready").encode()) for i in range(50)}
    assert len(queue_slots) > 40  # spread over the cluster's slots, not one
    for name in ("q1", "a}b", "{x}", "with:colons"):
        kinds = ("ready", "scheduled", "inflight", "messages", "owners", "deliveries", "seq", "epoch")
        assert len({key_slot(keys.queue_key(name, kind).encode()) for kind in kinds}) == 1
    coordination = [keys.coordination_key("lock", "sweep"), keys.wake_key("q1"), keys.coordination_key("events")]
    assert len({key_slot(k.encode()) for k in coordination}) == 1


def test_a_coordination_key_cannot_take_a_name_of_the_previous_layout():
    keys = Keys("djtasks")
    for kind in LEGACY_KINDS:
        with pytest.raises(ValueError, match="previous layout"):
            keys.coordination_key(kind, "x")
