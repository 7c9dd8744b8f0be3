"""The parent/child messages keep their JSON shape and survive the pipe unchanged."""

import json

import pytest

from djtasks.transport.broker import Claim
from djtasks.worker.protocol import (
    Consume,
    Executing,
    Holding,
    Released,
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


def test_a_claim_with_undecodable_bytes_crosses_the_pipe_as_text():
    claim = Claim(id="t1", envelope=b"\xff{}", deliveries=1, token="tok", queue="q")
    assert decode_claim(json.loads(json.dumps(encode_claim(claim)))).envelope == b"\\xff{}"
