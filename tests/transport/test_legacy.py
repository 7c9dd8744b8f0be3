"""Messages queued before the per-queue key layout still run after the upgrade.

The previous release's own scripts (tests/transport/legacy_lua, copied from it) write the old
layout: every key under {PREFIX}:, one messages hash, one arrival counter. The workers of this
release must move what is there into the queues' keys, keeping order, due times and counts.
"""

import json
import time
from pathlib import Path

import pytest
from django.db import transaction

from djtasks import publisher
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.transport.keys import LEGACY_KINDS
from tests.support.ledger import read, wait_all_done
from tests.testapp.tasks import work

LEGACY = Path(__file__).with_name("legacy_lua")


class OldRelease:
    """The previous release's publish and claim, run against the same Redis."""

    def __init__(self):
        broker = get_broker()
        self.client = broker.client
        self.tag = "{" + broker.prefix + "}"
        prelude = (LEGACY / "_prelude.lua").read_text()
        self.publish_script = self.client.register_script(prelude + (LEGACY / "publish.lua").read_text())
        self.claim_script = self.client.register_script(prelude + (LEGACY / "claim.lua").read_text())

    def key(self, *parts):
        return ":".join((self.tag, *parts))

    def publish(self, queue, entries):
        """entries: (id, priority, due_ms) in the order they were enqueued."""
        argv = [len(entries)]
        for task_id, priority, due in entries:
            argv += [task_id, f"2:{priority}", str(priority), str(due)]
        keys = [self.key("m"), self.key("q", queue), self.key("s", queue), self.key("w", queue), self.key("seq")]
        self.publish_script(keys=keys, args=argv)
        self.client.sadd(self.key("queues"), queue)

    def claim(self, queue, lease_ms):
        keys = [self.key("m"), self.key("o"), self.key("d"), self.key("seq")]
        keys += [self.key("q", queue), self.key("s", queue), self.key("i", queue)]
        taken, _, _ = self.claim_script(keys=keys, args=[lease_ms, "old-worker", 100, 1, 0])
        return taken[0].decode() if taken else None

    def keys_left(self):
        """The keys of the old layout still in Redis (coordination keys, shared by both, left out)."""
        names = [k.decode() for k in self.client.keys(self.tag + ":*")]
        return sorted(n for n in names if n.split(":")[1] in LEGACY_KINDS)


pytestmark = pytest.mark.usefixtures("redis_server")


def test_the_old_layout_is_taken_in_with_its_order_due_times_and_delivery_counts():
    old = OldRelease()
    due = int(time.time() * 1000) + 60_000
    old.publish("default", [("low", -5, 0), ("a", 0, 0), ("b", 0, 0), ("high", 7, 0), ("later", 0, due)])
    old.publish("other", [("o1", 0, 0), ("held", 0, 0)])
    assert old.claim("other", 60_000) == "o1"  # an old worker still holds it: left to that worker
    time.sleep(0.01)
    assert old.claim("other", 1) == "held"  # its old worker died: its lease lapsed
    time.sleep(0.01)
    broker = get_broker()
    assert broker.adopt_legacy() == 6
    order = [broker.claim_one(["default"], f"w{i}", 10_000) for i in range(4)]
    assert [c.id for c in order] == ["high", "a", "b", "low"]
    assert broker.claim_one(["default"], "w5", 10_000) is None
    assert broker.scheduled("default") == [("later", due / 1000)]
    [held] = broker.claim(["other"], "w6", 10_000)
    assert (held.id, held.deliveries) == ("held", 2)  # its old delivery counted
    assert broker.adopt_legacy() == 0
    # The held id's message stays in the old layout for its worker; nothing else does.
    assert old.keys_left() == sorted([old.key("d"), old.key("i", "other"), old.key("m"), old.key("o"), old.key("seq")])
    assert old.client.hkeys(old.key("m")) == [b"o1"]


def test_an_interrupted_take_over_is_done_again_without_duplicates():
    old = OldRelease()
    old.publish("default", [("a", 0, 0), ("b", 0, 0)])
    broker = get_broker()
    assert broker.adopt_legacy() == 2
    old.publish("default", [("a", 0, 0)])  # as if the worker died between copying and removing
    assert broker.adopt_legacy() == 0  # already known: left alone
    assert [c.id for c in broker.claim(["default"], "w", 10_000, limit=5)] == ["a", "b"]
    assert old.keys_left() == []


@pytest.mark.django_db(transaction=True)
def test_tasks_queued_by_the_previous_release_run_once_after_the_upgrade(worker, ledger):
    keys = [f"old{i}" for i in range(6)]
    with transaction.atomic():
        rows = [work.apply_async((key,), priority=i) for i, key in enumerate(keys)]
    publisher.flush()
    get_broker().client.flushall()  # as the previous release left it: its layout only
    old = OldRelease()
    old.publish("default", [(r.id, i, 0) for i, r in enumerate(rows)])
    # A long sweep grace: the outbox sweep leaves these rows alone, so only the take-over can run them.
    settings = json.dumps({"SWEEP_GRACE": 3600})
    worker("-c", "1", env={"DJTASKS_TEST_SETTINGS": settings})
    assert wait_all_done([r.id for r in rows], timeout=30)
    started = [e.key for e in read(ledger) if e.kind == "start"]
    assert started == list(reversed(keys))  # priority order kept: 5 first
    assert TaskRecord.objects.filter(pk__in=[r.id for r in rows], attempts=1).count() == 6
    assert old.keys_left() == []
