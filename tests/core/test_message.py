"""The envelope decoder returns a Message or raises MessageRejected, whatever the bytes."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djtasks.core.message import Message
from djtasks.exceptions import MessageRejected


def test_an_envelope_round_trips():
    message = Message(id="abc", queue="default", priority=-5)
    assert message.encode() == "2:-5"
    assert Message.decode(message.encode().encode(), expected_id="abc", queue="default") == message


def test_a_version_1_json_envelope_of_an_earlier_release_still_decodes():
    raw = b'{"v":1,"id":"abc","q":"mail","p":7}'
    assert Message.decode(raw, expected_id="abc", queue="mail") == Message(id="abc", queue="mail", priority=7)


@pytest.mark.parametrize(
    "raw", [b"2:", b"2:-", b"2:x", b"2:1.5", b"2:101", b"2:-101", b"2:12345", b"2: 1", "2:\u0663".encode()]
)
def test_malformed_compact_envelopes_are_rejected(raw):
    with pytest.raises(MessageRejected):
        Message.decode(raw, expected_id="a", queue="default")


def test_a_compact_envelope_without_its_id_and_queue_is_rejected():
    with pytest.raises(MessageRejected):
        Message.decode(b"2:0")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"v": 2, "id": "a", "q": "default", "p": 0}',
        b'{"v": 1, "id": "", "q": "default", "p": 0}',
        b'{"v": 1, "id": "a", "q": 7, "p": 0}',
        b'{"v": 1, "id": "a", "q": "default", "p": 1000}',
        b'{"v": 1, "id": "a", "q": "default", "p": true}',
        b'{"v": 1, "id": "a", "q": "default", "p": NaN}',
        b"[" * 100000,
        b'{"v": 1, "id": "a", "q": "default", "p": 0, "x": "' + b"y" * 5000 + b'"}',
    ],
)
def test_malformed_envelopes_are_rejected(raw):
    with pytest.raises(MessageRejected):
        Message.decode(raw)


def test_an_envelope_for_another_id_is_rejected():
    with pytest.raises(MessageRejected, match="does not match"):
        Message.decode(b'{"v":1,"id":"a","q":"q","p":0}', expected_id="b", queue="q")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_rejected(raw):
    try:
        assert isinstance(Message.decode(raw), Message)
    except MessageRejected:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["v", "id", "q", "p", "x"]), json_values))
def test_any_json_object_decodes_or_is_rejected(data):
    try:
        message = Message.decode(json.dumps(data))
    except MessageRejected:
        return
    assert message.id == data["id"] and message.queue == data["q"]
