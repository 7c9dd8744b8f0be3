"""Hostile values for the attack tests, built from recipes that are themselves plain ASCII JSON.

A recipe is a one-key dict (PostgreSQL's jsonb does not keep key order). It can travel as a task
argument whatever the value it describes (a NUL, a lone surrogate, a set, NaN, a dict with int
keys, an exception whose str() raises), so the worker builds the value in the task and the test
builds the same value to know what to expect.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

MAX_DEPTH = 100  # djtasks stores JSON nested at most this deep (core/values.py)


class EvilDict(dict):
    """A dict whose items() raises (json.dumps would call it for a dict subclass); what it holds is plain."""

    def items(self):  # type: ignore[override]
        raise KeyboardInterrupt("items() of an evil dict")


class Opaque:
    """A plain object: not JSON."""

    def __repr__(self) -> str:
        return "Opaque()"


def build(recipe: Any) -> Any:
    """Build the value a recipe describes."""
    kind, arg = next(iter(recipe.items()))
    match kind:
        case "s":
            return "".join(chr(c) for c in arg)
        case "i":
            return int(arg)
        case "f":
            return float(arg)
        case "b":
            return bool(arg)
        case "n":
            return None
        case "l":
            return [build(item) for item in arg]
        case "t":
            return tuple(build(item) for item in arg)
        case "d":
            return {build(k): build(v) for k, v in arg}
        case "big":  # [length, code point]
            return chr(arg[1]) * arg[0]
        case "deep":
            value: Any = "bottom"
            for _ in range(arg):
                value = [value]
            return value
        case "o":
            return OBJECTS[arg]()
    raise ValueError(f"unknown recipe {recipe!r}")


OBJECTS = {
    "set": lambda: {1, 2},
    "bytes": lambda: b"\x00\xff",
    "object": Opaque,
    "complex": lambda: 1j,
    "decimal": lambda: decimal.Decimal("1.1"),
    "datetime": lambda: datetime.datetime(2026, 1, 1),
    "evil_dict": lambda: EvilDict(a=1),
    "generator": lambda: (i for i in range(3)),
    "function": lambda: build,
}


def _strings(value: Any) -> list[str]:
    """Every string in a value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def normal(value: Any) -> Any:
    """The value as JSON gives it back: tuples become lists (a dict subclass is read as a dict)."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in dict.items(value)}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    return value


def has_objects(recipe: Any) -> bool:
    """Say whether a recipe holds an object (whose str() differs from one process to another)."""
    return '"o"' in json.dumps(recipe)


def storable(value: Any) -> bool:
    """Say whether a value survives a JSON column unchanged: an oracle written apart from djtasks' own check."""
    try:
        value = normal(value)
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    if json.loads(text) != value:  # a non-str key became a str (or collided with one)
        return False
    if _depth(value) > MAX_DEPTH:
        return False
    for s in _strings(value):
        if "\x00" in s or any(0xD800 <= ord(c) <= 0xDFFF for c in s):
            return False
    return True


def same(read: Any, written: Any) -> bool:
    """Compare a value read back from the database with the one written (floats by value: PostgreSQL
    keeps numbers as decimals, so 1e20 may read back as the int it equals)."""
    if isinstance(written, float):
        return isinstance(read, int | float) and not isinstance(read, bool) and float(read) == written
    if isinstance(written, bool) or written is None or isinstance(written, str | int):
        return type(read) is type(written) and read == written
    if isinstance(written, list | tuple):
        return isinstance(read, list) and len(read) == len(written) and all(map(same, read, written))
    if isinstance(written, dict):
        return (
            isinstance(read, dict) and read.keys() == written.keys() and all(same(read[k], written[k]) for k in written)
        )
    return False


# Exceptions ---------------------------------------------------------------------------------


class CustomBase(BaseException):
    """A BaseException that is not an Exception."""


class CustomError(Exception):
    pass


class StrRaises(Exception):
    def __str__(self) -> str:
        raise ValueError("str() of this exception raises")


class StrRaisesBase(Exception):
    def __str__(self) -> str:
        raise KeyboardInterrupt("str() raises KeyboardInterrupt")


class StrNotStr(Exception):
    def __str__(self):  # type: ignore[override]
        return 42


LONG_NAME = type("L" * 300, (Exception,), {})

EXCEPTIONS: dict[str, Any] = {
    "ValueError": ValueError,
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "GeneratorExit": GeneratorExit,
    "CustomBase": CustomBase,
    "CustomError": CustomError,
    "StrRaises": StrRaises,
    "StrRaisesBase": StrRaisesBase,
    "StrNotStr": StrNotStr,
    "LongName": LONG_NAME,
}


def exception(kind: str, message: Any) -> BaseException:
    """The exception a raise recipe describes; message is a built value (any type)."""
    return EXCEPTIONS[kind](message)


def expected_type(kind: str) -> str:
    cls = EXCEPTIONS[kind]
    return f"{cls.__module__}.{cls.__qualname__}"[:255]


def plain_text(text: Any) -> bool:
    """Say whether str(message) is stored as it is (no NUL, no surrogate, not huge)."""
    return (
        isinstance(text, str)
        and "\x00" not in text
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        and len(text) < 10_000
    )
