"""The decoding boundary: total functions over whatever bytes Redis holds."""

import logging
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks.transport import decode

anything = st.one_of(st.binary(max_size=300), st.text(max_size=100))
values = st.one_of(anything, st.none(), st.booleans(), st.integers(), st.floats(), st.lists(st.integers(), max_size=3))


def unescape(text: str) -> bytes:
    """Read escaped() back into the bytes it describes (the test's own reading of the format)."""
    out = bytearray()
    for match in re.finditer(r"\\\\|\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|(.)", text, re.S):
        if match.group(0) == "\\\\":
            out += b"\\"
        elif match.group(1):
            out.append(int(match.group(1), 16))
        elif match.group(2):
            out += chr(int(match.group(2), 16)).encode("utf-8", "surrogatepass")
        else:
            out += match.group(3).encode()
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_escaped_bytes_are_printable_and_say_exactly_which_bytes_they_were(raw):
    text = decode.escaped(raw)
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text)
    assert unescape(text) == raw


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\xff", "\\xff"),
        (b"a\x00b", "a\\x00b"),
        (b"line\nbreak", "line\\x0abreak"),
        (b"back\\slash", "back\\\\slash"),
        ("é".encode(), "é"),
        ("\u0085".encode(), "\\u0085"),
        (b"\xed\xa0\x80", "\\xed\\xa0\\x80"),
        ("\ud800", "\\ud800"),
    ],
)
def test_escaped_examples(raw, text):
    assert decode.escaped(raw) == text


def test_escaped_cuts_long_input_and_marks_the_cut():
    assert decode.escaped(b"x" * 10_000, limit=10) == "x" * 10 + "..."
    assert decode.escaped(b"\xff" * 10_000, limit=8) == "\\xff\\xff..."


@pytest.mark.parametrize(
    ("raw", "defect"),
    [
        (b"\xff", "not valid UTF-8"),
        (b"\xed\xa0\x80", "not valid UTF-8"),
        (b"a\x00b", "NUL"),
        (b"", "empty"),
        (b"x" * 256, "256 characters long, over 255"),
    ],
)
def test_an_id_that_cannot_be_a_row_id_has_a_defect_and_its_escaped_bytes(raw, defect):
    text, found = decode.task_id(raw)
    assert defect in found and text == decode.escaped(raw, limit=1024)


def test_an_id_that_can_be_a_row_id_is_itself():
    assert decode.task_id("tâche:1 /\n".encode()) == ("tâche:1 /\n", "")
    assert decode.task_id(b"x" * 255) == ("x" * 255, "")


@settings(max_examples=300, deadline=None)
@given(values)
def test_the_decoders_are_total(raw):
    if isinstance(raw, bytes):
        text, defect = decode.task_id(raw)
        assert isinstance(text, str) and isinstance(defect, str)
    if isinstance(raw, bytes | str):
        decode.text(raw)
        decode.loads(raw)
        decode.digest(raw)
        decode.escaped(raw)
    integer, number = decode.integer(raw), decode.number(raw)
    assert integer is None or type(integer) is int
    assert number is None or (type(number) is float and number == number and abs(number) != float("inf"))


@pytest.mark.parametrize(
    ("raw", "integer", "number"),
    [
        (b"12", 12, 12.0),
        (b"-3", -3, -3.0),
        (b"1.5", None, 1.5),
        (b"inf", None, None),
        (b"nan", None, None),
        (b"abc", None, None),
        (b"9" * 30, None, 1e30),
        (True, None, None),
        (10**400, 10**400, None),
    ],
)
def test_numbers_read_as_numbers_and_nothing_else(raw, integer, number):
    assert decode.integer(raw) == integer
    assert decode.number(raw) == number


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"NaN", b"{", b"\xff", b'{"a": Infinity}'])
def test_json_that_is_not_json_has_a_defect(raw):
    value, defect = decode.loads(raw)
    assert value is None and defect.startswith("not JSON")


def test_a_skipped_entry_is_logged_once_naming_the_key_then_rate_limited(caplog, monkeypatch):
    monkeypatch.setattr(decode, "_skips", decode._Skips())
    monkeypatch.setattr(decode, "SKIP_BURST", 3)
    with caplog.at_level(logging.WARNING, logger="djtasks"):
        decode.skipped("k", b"\xff", "bad")
        decode.skipped("k", b"\xff", "bad")  # the same entry again: not logged again
        for i in range(5):
            decode.skipped("k", f"e{i}", "bad")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == f"Skipped an entry of k (sha1 {decode.digest(b'\xff')}): \\xff: bad"
    assert len(lines) == 3  # the burst: later entries of k are counted, and said with the next line
