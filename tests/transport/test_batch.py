"""connection.Batch sends its commands itself (send_raw): the replies must be redis-py's pipeline's, and
an exchange cut short must not leave a reply for the connection's next user."""

from __future__ import annotations

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from djtasks.transport import connection
from djtasks.transport.broker import get_broker
from djtasks.transport.connection import Batch

pytestmark = pytest.mark.usefixtures("redis_server")

COMMANDS: list[connection.Command] = [
    ("SET", "batch:s", "v"),
    ("GET", "batch:s"),
    ("GET", "batch:absent"),
    ("RPUSH", "batch:l", "a", "b", "c"),
    ("LPOP", "batch:l", 2),
    ("HINCRBY", "batch:h", "n", 3),
    ("HINCRBYFLOAT", "batch:h", "f", 0.25),
    ("HGETALL", "batch:h"),
    ("EXPIRE", "batch:h", 60),
    ("ZADD", "batch:z", 1.5, "m"),
    ("ZSCORE", "batch:z", "m"),
    ("HINCRBY", "batch:s", "n", 1),  # WRONGTYPE: an error reply, returned in its place
    ("BLPOP", "batch:l", 0.01),
    ("EVAL", "return {1, 'two', {3}}", 0),
]


def through_redis_py(client: redis.Redis, commands: list[connection.Command]) -> list[object]:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute(raise_on_error=False)


def comparable(replies: list[object]) -> list[object]:
    return [(type(r), str(r)) if isinstance(r, Exception) else r for r in replies]


def test_the_replies_are_the_pipeline_s_callbacks_and_errors_included():
    client = get_broker().client
    client.delete("batch:s", "batch:l", "batch:h", "batch:z")
    expected = comparable(through_redis_py(client, COMMANDS))
    client.delete("batch:s", "batch:l", "batch:h", "batch:z")
    assert comparable(connection.send_raw(client, COMMANDS)) == expected
    assert isinstance(expected[11][0], type) and issubclass(expected[11][0], redis.ResponseError)


def test_a_script_redis_lacks_is_loaded_and_sent_again():
    broker = get_broker()
    broker.client.script_flush()
    pipe = Batch(broker.client)
    pipe.script(broker.scripts.clock, [broker.coordination_key("clock")], [])
    pipe.command(("SET", "batch:after", "1"))
    (seconds, micros), ok = pipe.execute()
    assert int(seconds) > 1_700_000_000 and ok is True


def test_an_argument_redis_py_cannot_send_is_refused_before_anything_is_sent():
    client = get_broker().client
    client.delete("batch:never")
    with pytest.raises(redis.DataError):
        connection.send_raw(client, [("SET", "batch:never", "1"), ("SET", "batch:x", None)])  # type: ignore[list-item]
    assert client.get("batch:never") is None


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit, redis.TimeoutError])
def test_an_exchange_cut_short_leaves_no_reply_for_the_next(monkeypatch, interruption):
    """A BaseException (a time limit's, a signal's) between two replies: the connection is dropped, not pooled."""
    client = get_broker().client
    client.set("batch:first", "1")
    read = redis.connection.AbstractConnection.read_response
    reads = []

    def cut(self, *args, **kwargs):
        reads.append(1)
        if len(reads) == 2:
            raise interruption()
        return read(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", cut)
    with pytest.raises(interruption):
        connection.send_raw(client, [("GET", "batch:first"), ("GET", "batch:first"), ("GET", "batch:first")])
    monkeypatch.undo()
    for _ in range(5):  # whichever pooled connection comes next answers its own command
        assert connection.send_raw(client, [("ECHO", "mine"), ("ECHO", "too")]) == [b"mine", b"too"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.binary(max_size=16).map(bytearray),  # refused by hiredis: packed by redis-py instead
            st.binary(max_size=16).map(memoryview),
            st.text(max_size=32),
            st.integers(),
            st.floats(),
        ),
        max_size=8,
    )
)
@example(values=[bytearray(b"ab"), b"c"])
def test_any_value_is_stored_as_redis_py_would_store_it(values):
    client = get_broker().client
    client.delete("batch:a", "batch:b")
    if values:
        through_redis_py(client, [("RPUSH", "batch:a", *values)])
        connection.send_raw(client, [("RPUSH", "batch:b", *values)])
    assert client.lrange("batch:a", 0, -1) == client.lrange("batch:b", 0, -1)
