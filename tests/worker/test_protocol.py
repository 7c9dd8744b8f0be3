"""The parent/child messages keep their JSON shape and survive the pipe unchanged."""

import json
import time
from multiprocessing import Pipe

import pytest

from djtasks.transport.broker import Claim
from djtasks.worker.protocol import (
    Consume,
    Events,
    Executing,
    Holding,
    Released,
    Reporter,
    Skip,
    decode_claim,
    decode_order,
    decode_report,
    encode_claim,
)

CLAIM = Claim(id="t1", envelope=b'{"v":1}', deliveries=2, token="tok", queue="default")


@pytest.mark.parametrize(
    ("report", "wire"),
    [
        (Holding((CLAIM,)), {"event": "start", "claims": [encode_claim(CLAIM)]}),
        (Executing("t1", 2.5), {"event": "exec", "id": "t1", "hard": 2.5}),
        (Executing("t1", None), {"event": "exec", "id": "t1", "hard": None}),
        (Released(("t1", "t2")), {"event": "done", "ids": ["t1", "t2"]}),
    ],
)
def test_a_report_is_sent_as_its_json_event_and_read_back_equal(report, wire):
    assert json.loads(report.encode()) == wire
    assert decode_report(report.encode()) == report


@pytest.mark.parametrize(
    ("order", "wire"),
    [(Skip(("t1",)), {"skip": ["t1"]}), (Consume(("a", "b")), {"queues": ["a", "b"]})],
)
def test_an_order_is_sent_as_its_json_object_and_read_back_equal(order, wire):
    assert json.loads(order.encode()) == wire
    assert decode_order(order.encode()) == order


def test_a_claim_with_undecodable_bytes_crosses_the_pipe_unchanged():
    claim = Claim(id="t1", envelope=b"\xff{}", deliveries=1, token="tok", queue="q")
    assert decode_claim(json.loads(json.dumps(encode_claim(claim)))) == claim
    odd = Claim(id="\\xff", envelope=b"2:0", deliveries=1, token="t", queue="q", raw_id=b"\xff", defect="not UTF-8")
    assert decode_claim(json.loads(json.dumps(encode_claim(odd)))) == odd


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff",
        b"[]",
        b"{}",
        b'{"event": "exec"}',
        b'{"event": "exec", "id": 1, "hard": null}',
        b'{"event": "exec", "id": "t", "hard": "soon"}',
        b'{"event": "done", "ids": "t1"}',
        b'{"event": "start", "claims": [{"id": "t"}]}',
        b'{"event": "start", "claims": "x"}',
        b"[" * 100000,
    ],
)
def test_a_report_that_is_not_one_reads_as_none(raw):
    assert decode_report(raw) is None


@pytest.mark.parametrize("raw", [b"", b"{}", b"[1]", b'{"skip": "t"}', b'{"queues": [1]}', b'{"other": 1}'])
def test_an_order_that_is_not_one_reads_as_none(raw):
    assert decode_order(raw) is None


def test_the_child_reads_every_order_waiting_in_its_pipe_and_sees_its_parent_hang_up():
    parent, child = Pipe()
    reporter = Reporter(child)
    began = time.monotonic()
    assert reporter.orders() == set() and not reporter.parent_gone  # nothing waiting: no wait either
    assert time.monotonic() - began < 0.5
    for order in (Skip(("a",)), Consume(("q1", "q2")), Skip(("b", "c")), Events(False)):
        parent.send_bytes(order.encode())
    assert reporter.orders() == {"a", "b", "c"}
    assert (reporter.queues, reporter.events) == (["q1", "q2"], False)
    assert reporter.orders() == set()  # read once
    parent.send_bytes(Skip(("d",)).encode())
    parent.close()
    assert reporter.orders() == {"d"} and reporter.parent_gone  # what came before the hang-up, then EOF
