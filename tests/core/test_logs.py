"""The djtasks logger escapes control characters, so what it logs cannot forge a line."""

import logging
import re

import pytest

from djtasks.core.logs import CONTROL, escape


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="djtasks")

    def read():
        return caplog.text.splitlines()

    return read


def test_every_control_character_is_escaped_and_nothing_else():
    controls = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F, 0x202E, 0x2066]]
    for char in controls:
        assert CONTROL.search(escape(f"a{char}b")) is None, repr(char)
        assert escape(f"a{char}b") != f"a{char}b"
    assert escape("a\nb") == "a\\nb" and escape("\x1b[2K") == "\\x1b[2K" and escape("\u2028") == "\\u2028"
    assert escape("plain ünïcode 😀 \\n stays") == "plain ünïcode 😀 \\n stays"


def test_arguments_are_escaped_numbers_still_format_and_tracebacks_are_indented(lines):
    logger = logging.getLogger("djtasks")
    logger.info("Task id=%s attempt %d took %.1f s (%r)", "x\n[ERROR] forged", 3, 1.25, "r\rq")
    logger.info("by name %(id)s", {"id": "y\nforged"})
    try:
        raise ValueError("boom\n[ERROR] forged too")
    except ValueError:
        logger.exception("Failed %s", "z")
    text = "\n".join(lines())
    assert "Task id=x\\n[ERROR] forged attempt 3 took 1.2 s ('r\\rq')" in text
    assert "by name y\\nforged" in text
    assert not [line for line in lines() if line.startswith("[ERROR]")]
    assert "  ValueError: boom" in text and "  [ERROR] forged too" in text


def test_an_argument_whose_str_raises_is_logged_as_unprintable(lines):
    class Hostile:
        def __str__(self):
            raise KeyboardInterrupt

    logging.getLogger("djtasks").warning("got %s", Hostile())
    assert re.search(r"got <unprintable \S*Hostile>", "\n".join(lines()))
