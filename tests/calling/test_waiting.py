"""AsyncResult.get() waits on a pub/sub connection the thread keeps: no new connection per wait, no early return."""

from __future__ import annotations

import pytest
import redis.connection

from djtasks import TimeoutError as ResultTimeout
from djtasks.transport.broker import get_broker
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_consecutive_waits_reuse_one_redis_connection(worker, monkeypatch):
    """Counted in this process (the caller): the worker's own connections are not the caller's."""
    worker()
    assert add.delay(1, 1).get(timeout=30) == 2  # the worker is up; this thread's pub/sub connection is made
    made = []
    connect = redis.connection.AbstractConnection.connect

    def counted(self, *args, **kwargs):
        if getattr(self, "_sock", None) is None:  # connect() of a connected connection does nothing
            made.append(self)
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", counted)
    assert [add.delay(i, 1).get(timeout=30) for i in range(10)] == [i + 1 for i in range(10)]
    assert made == [], f"{len(made)} new connection(s) for 10 waits"


def test_a_late_notification_of_an_earlier_wait_does_not_end_the_next_one(redis_server):
    broker = get_broker()
    earlier = broker.done_channel("earlier-task")
    with broker.subscription(["earlier-task"]) as wait:
        broker.client.publish(earlier, "done")
        broker.client.publish(earlier, "done")  # delivered twice: the second is still unread at the end
        assert wait(5.0)
    pending = add.delay(1, 2)  # no worker: it never finishes
    with pytest.raises(ResultTimeout):
        pending.get(timeout=0.5)
    assert pending.state == "PENDING"


def test_a_wait_whose_connection_broke_is_not_kept(redis_server):
    broker = get_broker()
    with broker.subscription(["first"]):
        pass
    broker.client.client_kill_filter(_type="pubsub")
    result = add.delay(2, 2)
    with pytest.raises(ResultTimeout):
        result.get(timeout=0.5)  # the kept connection is dead: get() still waits, on a new one or by polling
    with broker.subscription(["second"]) as wait:
        broker.client.publish(broker.done_channel("second"), "done")
        assert wait(5.0)
