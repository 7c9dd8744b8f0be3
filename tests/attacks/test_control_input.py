"""No control message stops a worker's parent: garbage is refused (with an error reply when it can be).

Against one live worker per test: Hypothesis pushes raw bytes, arbitrary JSON and command-shaped
messages with wrong arguments straight onto its control list, next to pings; the parent must keep
answering ping, running tasks and, at the end, obey shutdown. Bad arguments of every command get
an error reply; pool_grow stops at MAX_CONCURRENCY; a time-limit override holding garbage is skipped.
"""

import json
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from djtasks import control
from djtasks.core.commands import COMMANDS
from djtasks.core.conf import get_settings
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
SMALL_POOL = {"DJTASKS_TEST_SETTINGS": json.dumps({"MAX_CONCURRENCY": 3})}
ADD = "tests.testapp.tasks.add"


def key(*parts):
    return ":".join(["{" + get_settings().PREFIX + "}", *parts])


def start(worker):
    process = worker("-c", "1", env=SMALL_POOL)
    worker_id = process.name
    assert wait_for(lambda: worker_id in control.workers(), timeout=30), process.log()[-3000:]
    return process, worker_id


def answers(worker_id, process):
    [reply] = control.ping(destination=[worker_id], timeout=10)
    assert reply.ok and reply.data == "pong", (reply, process.log()[-3000:])


def stops_warmly(worker_id, process):
    [reply] = control.shutdown(destination=[worker_id], timeout=10)
    assert reply.ok, reply
    assert process.wait(timeout=30) == 0, process.log()[-3000:]


def redis_ms(client):
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def ask(client, worker_id, message):
    """Push a raw command with a request id; return the decoded reply."""
    rid = uuid.uuid4().hex
    client.rpush(key("ctl", worker_id), json.dumps({"rid": rid, "deadline_ms": redis_ms(client) + 10_000, **message}))
    got = client.blpop([key("reply", rid)], timeout=10)
    assert got is not None, f"no reply to {message}"
    return json.loads(got[1])


DEEP = b"[" * 10_000 + b"]" * 10_000  # valid JSON, too deep for the decoder: RecursionError, not ValueError
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Every command but shutdown (which would end the test's worker), and names that are none.
names = st.sampled_from(sorted(set(COMMANDS) - {"shutdown"})) | st.text(max_size=12)
argument_values = json_values | st.sampled_from(["default", "", "a,b", 0, -1, 1, 2, 10**9, "active", ADD])
commands = st.fixed_dictionaries(
    {
        "cmd": names | json_values,
        "args": st.dictionaries(
            st.sampled_from(["n", "what", "task", "rate", "queue", "id", "terminate", "x"]), argument_values, max_size=3
        )
        | json_values,
    },
    optional={
        "rid": st.none() | st.integers() | st.text(max_size=70) | st.just("a" * 65),
        "deadline_ms": st.none() | st.integers() | st.floats() | st.text(max_size=5),
        "id": argument_values,
        "terminate": json_values,
    },
)
payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | commands.map(lambda c: json.dumps(c).encode())
    | st.sampled_from([DEEP, b"{" * 70_000, b'{"cmd": "ping", "pad": "' + b"x" * 100_000 + b'"}'])
)


def test_no_control_message_stops_the_parent_from_supervising(worker, redis_server):
    process, worker_id = start(worker)
    client = redis_server.client()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(payloads, min_size=1, max_size=6))
    @example([DEEP])
    def push(batch):
        client.rpush(key("ctl", worker_id), *batch)
        answers(worker_id, process)

    push()
    control.add_consumer("default", destination=[worker_id], timeout=10)  # in case one was cancelled
    assert add.delay(2, 3).get(timeout=30) == 5
    assert "Traceback" not in process.log()
    stops_warmly(worker_id, process)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"cmd": "pool_grow", "args": {"n": "2"}}, "the number of children must be a whole number from 1 to 1024"),
        ({"cmd": "pool_grow", "args": {"n": 1.5}}, "the number of children must be a whole number"),
        ({"cmd": "pool_grow", "args": {"n": 10**6}}, "from 1 to 1024, not 1000000"),
        ({"cmd": "pool_grow", "args": {"n": 5}}, "MAX_CONCURRENCY is 3"),
        ({"cmd": "pool_shrink", "args": {"n": True}}, "the number of children must be a whole number"),
        ({"cmd": "inspect", "args": {"what": "secrets"}}, "cannot inspect 'secrets'"),
        ({"cmd": "inspect", "args": {}}, "inspect needs the argument 'what'"),
        ({"cmd": "ping", "args": {"x": 1}}, "ping takes no argument 'x'"),
        ({"cmd": "add_consumer", "args": {"queue": ""}}, "a queue name cannot be empty"),
        ({"cmd": "add_consumer", "args": {"queue": "q" * 101}}, "at most 100 characters"),
        ({"cmd": "time_limit", "args": {"task": 5}}, "the task name must be 1 to 255 printable characters"),
        ({"cmd": "rate_limit", "args": {"task": ADD, "rate": ["10/s"]}}, "the rate must be"),
        ({"cmd": "launch_missiles"}, "unknown command 'launch_missiles'"),
        ({"cmd": 7}, "the command must be a string"),
        ({"cmd": "ping", "args": [1]}, "the arguments must be a JSON object"),
    ],
)
def test_bad_arguments_get_an_error_reply_and_the_worker_goes_on(worker, redis_server, message, error):
    process, worker_id = start(worker)
    client = redis_server.client()
    reply = ask(client, worker_id, message)
    assert reply["ok"] is False and error in reply["error"], reply
    assert reply["worker"] == worker_id
    answers(worker_id, process)
    stats = control.inspect("stats", destination=[worker_id], timeout=10)[0].data
    assert stats["concurrency"] <= 3, stats


def test_pool_grow_stops_at_max_concurrency(worker):
    process, worker_id = start(worker)
    assert control.pool_grow(2, destination=[worker_id], timeout=10)[0].ok
    [refused] = control.pool_grow(1, destination=[worker_id], timeout=10)
    assert not refused.ok and "MAX_CONCURRENCY is 3" in refused.error
    assert control.inspect("stats", destination=[worker_id], timeout=10)[0].data["concurrency"] == 3
    with pytest.raises(ValueError, match="from 1 to 1024"):
        control.pool_grow(10**6)
    answers(worker_id, process)


GARBAGE_LIMITS = ['["x", "y"]', "[1e999, null]", "[-5, 2]", "[true, false]", "[5, 1]", '{"a": 1, "b": 2}', "[[1], 2]"]


def test_a_time_limit_override_holding_garbage_is_skipped(worker, redis_server):
    process, worker_id = start(worker)
    client = redis_server.client()
    for garbage in GARBAGE_LIMITS:
        client.hset(key("timelimits"), ADD, garbage)
        [reply] = control.broadcast("time_limit", {"task": ADD}, destination=[worker_id], timeout=10)
        assert reply.ok and reply.data["soft"] is None and reply.data["hard"] is None, (garbage, reply)
        # Children re-read the overrides at most once a second: run tasks past that.
        for _ in range(3):
            assert add.delay(1, 2).get(timeout=30) == 3, garbage
        answers(worker_id, process)
    assert "Time-limit override of 'tests.testapp.tasks.add' skipped" in process.log()
    stops_warmly(worker_id, process)


def test_garbage_heartbeats_and_replies_are_skipped(redis_server):
    client = redis_server.client()
    broker = get_broker()
    broker.heartbeat("good.1", {"pid": 1, "queues": ["default"], "active": [], "uptime_s": 5.0}, ttl_s=30)
    client.sadd(key("workers"), b"\xff\xfe", "bad.2", "bad.3", "bad.4")
    client.set(key("worker", "bad.2"), b"\xff not json", ex=30)
    client.set(key("worker", "bad.3"), b"[1, 2]", ex=30)
    client.set(key("worker", "bad.4"), b'{"queues": 5, "active": {"a": 1}, "ttl_s": "x", "uptime_s": []}', ex=30)
    rows = {row["worker"]: row for row in control.status()}
    assert set(rows) == {"good.1", "bad.4"}
    assert 0 <= rows["good.1"]["heartbeat_age_s"] < 5 and rows["good.1"]["uptime_s"] >= 5.0
    assert rows["bad.4"]["queues"] == [] and rows["bad.4"]["held"] == 0 and rows["bad.4"]["heartbeat_age_s"] is None
    assert b"\xff\xfe" not in client.smembers(key("workers"))
    client.rpush(key("reply", "r1"), b"\xff", b"[]", b'{"worker": 5}', b'{"worker": "w", "ok": "yes", "error": 3}')
    assert [broker.wait_reply("r1", 0.1) for _ in range(3)] == [None, None, None]
    assert broker.wait_reply("r1", 0.1) == {"worker": "w", "ok": False, "data": None, "error": "3"}
