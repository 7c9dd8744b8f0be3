"""The djtasks logger (and django.tasks), with one filter: what they log cannot forge a log line.

Task ids, names, queues, reasons and exception text come from outside (a caller, a message in
Redis, a task's exception). Every record of the "djtasks" logger has the control characters of
its message and arguments escaped (a newline shows as \\n, an escape sequence as \\x1b), and the
lines of its traceback indented (exc_info's, or a stored one given as extra={"traceback_text": ...}),
so no line that it writes can pass for another record. Numbers are left as they are, so %d and
%.1f still format them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

# C0 and C1 controls, DEL, the Unicode line and paragraph separators and the bidirectional
# overrides (which reorder what a terminal shows).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str) -> str:
    """Escape the control characters of text (a newline becomes the two characters \\n)."""
    return CONTROL.sub(_escape_one, text) if CONTROL.search(text) else text


def _shown(show: Any, value: Any) -> str:
    try:
        return escape(show(value))
    except BaseException:  # noqa: BLE001 - a logged object's str() may raise anything
        return f"<unprintable {type(value).__qualname__}>"


class Escaped:
    """A log argument whose str() and repr() have their control characters escaped."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __str__(self) -> str:
        return _shown(str, self.value)

    def __repr__(self) -> str:
        return _shown(repr, self.value)


def _argument(value: Any) -> Any:
    return value if isinstance(value, int | float) or value is None else Escaped(value)


class EscapeControlCharacters(logging.Filter):
    """Escape control characters in a record's message, its arguments and its traceback's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = escape(record.msg) if isinstance(record.msg, str) else Escaped(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {key: _argument(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_argument(value) for value in record.args)
        if not record.exc_text:
            text = None
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
            elif isinstance(stored := getattr(record, "traceback_text", None), str) and stored:
                text = stored.rstrip("\n")  # a traceback kept as text (a task's), written as exc_info would be
            if text:
                record.exc_text = "\n".join("  " + escape(line) for line in text.split("\n"))
        return True


def get_logger(name: str = "djtasks") -> logging.Logger:
    """Return a logger (the "djtasks" logger by default), its filter installed (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, EscapeControlCharacters) for f in logger.filters):
        logger.addFilter(EscapeControlCharacters())
    return logger


logger = get_logger()
# Django's own receivers of the task signals djtasks sends log each task's line there (a failure
# with its traceback, whose message a task's exception writes): escaped as djtasks' own lines are.
get_logger("django.tasks")
