"""AsyncResult.get() waits on a pub/sub connection the thread keeps: no new connection per wait, no early return."""

from __future__ import annotations

import threading
import time

import pytest
import redis.client
import redis.connection
from django.db import connection, connections

from djtasks import TimeoutError as ResultTimeout
from djtasks.calling.result import FRESH_SECONDS, AsyncResult
from djtasks.core.states import SUCCESS
from djtasks.record import reading
from djtasks.record.models import TaskRecord
from djtasks.testing import eager
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


def test_a_notification_redis_runs_before_the_subscription_is_not_lost(redis_server, monkeypatch):
    """The caller's SUBSCRIBE and the worker's PUBLISH come on two connections, and Redis may run them
    in either order: sent first is not run first (measured: 1 to 3 round trips in 1,500 waited the
    full second for their re-read). Here the SUBSCRIBE is held back until the row has been finished
    and its notification published, as a Redis that ran the other connection first would. get()
    must read the row only once Redis has taken the subscription: then the row it reads is done,
    or the notification reaches it. Before, it read the row as soon as the SUBSCRIBE was sent,
    saw it unfinished, and waited for a notification Redis had already dropped."""
    result = add.delay(2, 3)  # no worker: the task is finished by the thread below
    broker = get_broker()
    channel = broker.done_channel(result.id)
    read_after_subscribe = threading.Event()
    subscribing: list[threading.Thread] = []
    send = redis.connection.AbstractConnection.send_command

    def finish_then_subscribe(conn: redis.connection.AbstractConnection, args: tuple[object, ...], kwargs) -> None:  # type: ignore[no-untyped-def]
        read_after_subscribe.wait(0.3)  # a get() that waits for the confirmation reads nothing before it
        try:
            TaskRecord.objects.filter(pk=result.id).update(state=SUCCESS, result=5)
        finally:
            connections.close_all()
        assert redis_server.client().publish(channel, "done") == 0  # nobody is subscribed yet: dropped
        send(conn, *args, **kwargs)

    def held_back(conn: redis.connection.AbstractConnection, *args: object, **kwargs: object) -> None:
        if args and args[0] == "SUBSCRIBE" and not subscribing:
            subscribing.append(threading.Thread(target=finish_then_subscribe, args=(conn, args, kwargs)))
            subscribing[0].start()
            return
        send(conn, *args, **kwargs)

    def reads(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        try:
            return execute(sql, params, many, context)
        finally:
            if subscribing:
                read_after_subscribe.set()

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_command", held_back)
    began = time.monotonic()
    with connection.execute_wrapper(reads):
        assert result.get(timeout=10) == 5
    waited = time.monotonic() - began
    subscribing[0].join()
    assert waited < 0.8, f"get() waited {waited:.2f} s: it missed the notification and waited for its re-read"


class _Seen:
    """What the caller did, in order: "subscribe" for each SUBSCRIBE sent, "read" for each read of a row's state."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.events: list[str] = []
        send = redis.connection.AbstractConnection.send_command
        read_state = reading.read_state

        def sent(conn: redis.connection.AbstractConnection, *args: object, **kwargs: object) -> None:
            if args and args[0] == "SUBSCRIBE":
                self.events.append("subscribe")
            send(conn, *args, **kwargs)

        def read(using: str, task_id: str) -> object:
            self.events.append("read")
            return read_state(using, task_id)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_command", sent)
        monkeypatch.setattr(reading, "read_state", read)


def test_a_get_straight_after_the_enqueue_reads_the_row_only_once_subscribed(redis_server, monkeypatch):
    result = add.delay(1, 2)  # no worker: it never finishes
    seen = _Seen(monkeypatch)
    with pytest.raises(ResultTimeout):
        result.get(timeout=0.3)
    assert seen.events[:2] == ["subscribe", "read"], seen.events


def test_a_get_straight_after_the_enqueue_of_a_task_done_already_returns_from_its_one_read(redis_server, monkeypatch):
    """Done before get() looks (a fast worker, a unique call's earlier task): the read after the subscription
    finds it so, and no wait follows."""
    result = add.delay(2, 3)
    TaskRecord.objects.filter(pk=result.id).update(state=SUCCESS, result=5)
    seen = _Seen(monkeypatch)
    assert result.get(timeout=10) == 5
    assert seen.events == ["subscribe", "read"]


def test_a_handle_read_later_or_made_elsewhere_reads_the_row_first(redis_server, monkeypatch):
    """A done task's get() is then one read, with no subscription."""
    result = add.delay(2, 3)
    TaskRecord.objects.filter(pk=result.id).update(state=SUCCESS, result=5)
    time.sleep(FRESH_SECONDS + 0.05)
    seen = _Seen(monkeypatch)
    assert result.get(timeout=10) == 5
    assert AsyncResult(result.id).get(timeout=10) == 5
    assert seen.events == ["read", "read"]


def test_a_second_get_of_a_fresh_handle_reads_the_row_first(redis_server, monkeypatch):
    result = add.delay(2, 3)
    with pytest.raises(ResultTimeout):
        result.get(timeout=0.1)
    TaskRecord.objects.filter(pk=result.id).update(state=SUCCESS, result=5)
    seen = _Seen(monkeypatch)
    assert result.get(timeout=10) == 5
    assert seen.events == ["read"]


def test_in_eager_mode_a_get_straight_after_the_call_does_not_subscribe(monkeypatch):
    with eager():
        seen = _Seen(monkeypatch)
        assert add.delay(2, 3).get(timeout=1) == 5
    assert seen.events == ["read"]
