"""What only a Redis Cluster asks of djtasks: queues spread over the masters, any node as REDIS_URL,
and a resharding while a queue drains (MOVED and ASK redirections, scripts retried)."""

import threading
import time

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from redis.crc import key_slot

from djtasks import publisher
from djtasks.transport.broker import close_broker, get_broker
from djtasks.transport.keys import Keys
from tests.support.ledger import check, read, wait_all_done
from tests.support.waiting import wait_for
from tests.testapp.tasks import work

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]
QUEUES = ["default", "hipri", "mail", "reports"]


def masters_of(cluster, queues):
    return {queue: cluster.nodes.master_of(get_broker().queue_key(queue, "ready")) for queue in queues}


def test_any_node_named_by_redis_url_serves_every_queue(redis_server):
    for index in range(len(redis_server.nodes.ports)):
        with override_settings(DJTASKS={**settings.DJTASKS, "REDIS_URL": redis_server.nodes.node_url(index)}):
            close_broker()
            broker = get_broker()
            assert broker.clustered
            publisher.flush()
            assert work.delay(f"via-node-{index}", 0.0).id
            publisher.flush()
    close_broker()
    assert sum(stats["ready"] for stats in get_broker().queue_stats().values()) == 3


def test_four_queues_land_on_at_least_two_masters_and_drain(redis_server, worker, ledger, fault_report):
    placed = masters_of(redis_server, QUEUES)
    assert len(set(placed.values())) >= 2, placed
    keys = [f"{queue}-{i}" for queue in QUEUES for i in range(100)]
    with transaction.atomic():
        ids = [work.apply_async((key, 0.0), queue=key.split("-")[0]).id for key in keys]
    publisher.flush()
    holding = [port for port in redis_server.nodes.ports if redis_server.nodes.node(port).dbsize()]
    assert len(holding) >= 2  # the queued tasks sit on several masters
    worker("-c", "2", "-Q", ",".join(QUEUES))
    assert wait_all_done(ids, timeout=120)
    verdict = check(ledger, keys, ids)
    assert verdict.lost == [] and verdict.completed_twice == [] and verdict.started_twice == []


def a_queue_on_the_first_slot_of_its_master(cluster):
    """A queue name whose slot is the lowest its master serves: redis-cli reshard moves that one first."""
    slots = cluster.nodes.node(cluster.nodes.ports[0]).execute_command("CLUSTER", "SLOTS")
    firsts = {start: int(nodes[0][1]) for start, _, *nodes in slots}
    keys = Keys(settings.DJTASKS["PREFIX"])
    for i in range(200_000):
        name = f"resharded-{i}"
        slot = key_slot(keys.queue_key(name, "ready").encode())
        if slot in firsts:
            return name, slot, firsts[slot]
    raise AssertionError("no queue name hashes to the first slot of a master")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["redis-cli reshard", "held half-moved 3 s"])
def test_a_resharding_moves_a_queues_slot_while_it_drains_and_loses_nothing(
    how, redis_server, worker, ledger, fault_report
):
    queue, slot, source = a_queue_on_the_first_slot_of_its_master(redis_server)
    target = next(port for port in redis_server.nodes.ports if port != source)
    keys = [f"r{i}" for i in range(1500)]
    with transaction.atomic():
        ids = [work.apply_async((key, 0.002), queue=queue).id for key in keys]
    publisher.flush()
    worker("-c", "2", "-Q", queue)
    worker("-c", "1", "-Q", queue)
    assert wait_for(lambda: sum(1 for e in read(ledger) if e.kind == "end") >= 150, timeout=60)
    more, stop = [], threading.Event()

    def enqueue_meanwhile():
        while not stop.is_set():
            key = f"during{len(more)}"
            more.append((key, work.apply_async((key, 0.0), queue=queue).id))
            time.sleep(0.01)

    feeder = threading.Thread(target=enqueue_meanwhile, daemon=True)
    feeder.start()
    began = time.monotonic()
    if how == "redis-cli reshard":
        redis_server.nodes.reshard(slot, target)
    else:
        redis_server.nodes.migrate_slot_slowly(slot, target, hold_s=3.0)
    moved_in = time.monotonic() - began
    stop.set()
    feeder.join(10)
    assert redis_server.nodes.master_of_slot(slot) == target
    remaining = sum(1 for e in read(ledger) if e.kind == "end")
    assert remaining < len(keys)  # it really drained while the slot moved
    all_keys, all_ids = keys + [k for k, _ in more], ids + [i for _, i in more]
    assert wait_all_done(all_ids, timeout=120)
    verdict = check(ledger, all_keys, all_ids)
    assert verdict.lost == [] and verdict.completed_twice == []
    fault_report(
        fault=f"Cluster: a queue's slot moved mid-drain ({how})",
        enqueued=len(all_ids),
        lost=len(verdict.lost),
        ran_twice=len(verdict.started_twice),
        recovery_s=None,
        notes=f"slot {slot} moved in {moved_in:.1f} s with {len(more)} enqueued meanwhile; ASK/MOVED followed",
    )
