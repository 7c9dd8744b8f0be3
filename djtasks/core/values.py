"""What djtasks stores as JSON and as text: values that read back as they were written, on every database.

Arguments, headers and return values are JSON: str keys only (json.dumps would turn 1 into "1",
and {1: "a", "1": "b"} would lose a value), finite numbers, strings UTF-8 can encode and without
NUL (PostgreSQL refuses both), at most MAX_DEPTH levels deep. `plain()` checks a value and copies
it into plain types in one pass, so what is stored is exactly what was checked. `storable_text()`
makes any text (an exception's message, a reason) storable instead of refusing it.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 100  # json.dumps and the database's own limits lie further, and depend on the stack
# Python refuses to print an int of more than sys.get_int_max_str_digits() digits (4300), nor can
# json.dumps; ints of fewer bits than this have fewer digits than any limit Python allows (640).
_SHORT_INT_BITS = 2000
MAX_TEXT = 65536  # characters of an exception's message or traceback that are kept


class Unstorable(Exception):
    """Raised by plain(): where a value went wrong (a path such as [0]['a']) and what is wrong there."""

    def __init__(self, path: str, problem: str, *, wrong_type: bool = False):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.wrong_type = wrong_type  # not JSON at all (TypeError), rather than a JSON value refused


def text_problem(text: str) -> str | None:
    """Say why a string cannot be stored as it is (NUL, a surrogate), or None."""
    if str.isascii(text):
        return "contains a NUL character (U+0000), which PostgreSQL cannot store" if "\x00" in text else None
    if str.__contains__(text, "\x00"):
        return "contains a NUL character (U+0000), which PostgreSQL cannot store"
    try:
        str.encode(text, "utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a surrogate code point (U+{ord(text[exc.start]):04X}) that UTF-8 cannot encode"
    return None


def _scalar(value: Any, path: str) -> Any:
    """Copy a non-container value into its plain type, or raise Unstorable."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise Unstorable(path, problem)
        return str.__str__(value)
    if isinstance(value, int):
        if int.bit_length(value) > _SHORT_INT_BITS:
            try:
                int.__repr__(value)
            except ValueError:
                raise Unstorable(path, "is an integer with more digits than Python prints") from None
        return int.__int__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unstorable(path, f"is {float.__repr__(value)}, which JSON cannot carry")
        return float.__float__(value)
    raise Unstorable(path, f"is of type {type(value).__qualname__}, not JSON", wrong_type=True)


def plain(value: Any, path: str = "") -> Any:
    """Return a copy of value in plain JSON types (tuples become lists); raise Unstorable if it has no such copy.

    Total: whatever the value's own methods do, the only exception raised is Unstorable.
    """
    flat = _flat(value)
    if flat is not None:
        return flat
    try:
        return _plain(value, path)
    except Unstorable:
        raise
    except BaseException as exc:  # noqa: BLE001 - a value's own methods may raise anything
        raise Unstorable(path or "the value", f"cannot be read ({type(exc).__qualname__})", wrong_type=True) from None


def _flat(value: Any) -> Any:
    """The copy of an empty dict, or of a list or tuple of plain scalars _plain() would keep as they are; else None.

    Most calls' arguments are such a list (and no keyword arguments): copied without _plain()'s frames.
    """
    kind = type(value)
    if kind is dict:
        return {} if not value else None
    if kind is not list and kind is not tuple:
        return None
    for item in value:
        of = type(item)
        if of is int:
            if int.bit_length(item) > _SHORT_INT_BITS:
                return None
        elif of is str:
            if not str.isascii(item) or "\x00" in item:
                return None
        elif of is float:
            if not math.isfinite(item):
                return None
        elif item is not None and of is not bool:
            return None
    return list(value)


# A container being copied: (the container, the frame it sits in, its key there, its depth).
Frame = tuple[Any, Any, Any, int]


def _where(path: str, frame: Frame | None, key: Any = None) -> str:
    """The path of a frame's container (and of its key, if given): built only to report a problem."""
    keys = [] if key is None else [key]
    while frame is not None and frame[1] is not None:
        keys.append(frame[2])
        frame = frame[1]
    return path + "".join(f"[{_label(k)}]" for k in reversed(keys))


def _plain(value: Any, path: str) -> Any:
    if not isinstance(value, list | tuple | dict):
        return _scalar(value, path)
    root: list[Any] = [None]
    # Depth first without recursion; paths are built only for a problem (most values have none).
    stack: list[tuple[Frame, Any, Any]] = [((value, None, None, 1), root, 0)]
    while stack:
        frame, into, slot = stack.pop()
        item, _, _, depth = frame
        if depth > MAX_DEPTH:
            raise Unstorable(_where(path, frame), f"is nested more than {MAX_DEPTH} levels deep")
        copy: Any
        if isinstance(item, dict):
            copy = {}
            for k, v in dict.items(item):
                if not isinstance(k, str):
                    raise Unstorable(_where(path, frame, k), "is a key that is not a string", wrong_type=True)
                if problem := text_problem(k):
                    raise Unstorable(_where(path, frame, k), f"is a key that {problem}")
                k = str.__str__(k)
                copy[k] = _child(v, frame, k, path, stack, copy)
        else:
            # The base class's own iteration, as json.dumps does: a subclass's __iter__ is not asked.
            items = list(list.__iter__(item) if isinstance(item, list) else tuple.__iter__(item))
            copy = items
            for index, v in enumerate(items):
                items[index] = _child(v, frame, index, path, stack, items)
        into[slot] = copy
    return root[0]


def _child(value: Any, frame: Frame, key: Any, path: str, stack: list[Any], into: Any) -> Any:
    """Copy a member of a container; a container member is queued (its place filled later)."""
    kind = type(value)
    if kind is str:
        if not str.isascii(value) or "\x00" in value:
            if problem := text_problem(value):
                raise Unstorable(_where(path, frame, key), problem)
        return value
    if kind is bool or value is None or (kind is int and int.bit_length(value) <= _SHORT_INT_BITS):
        return value
    if kind is float and math.isfinite(value):
        return value
    if isinstance(value, list | tuple | dict):
        stack.append(((value, frame, key, frame[3] + 1), into, key))
        return None
    return _scalar(value, _where(path, frame, key))


def _label(key: Any) -> str:
    try:
        return f"{key!r}"[:80]
    except BaseException:  # noqa: BLE001 - a key's own repr may raise anything
        return f"<{type(key).__qualname__}>"


def storable_text(text: str, limit: int = MAX_TEXT) -> str:
    """Make untrusted text storable in any database: NUL and surrogates escaped, the middle of long text cut."""
    text = str.__str__(text)
    if text_problem(text):
        text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"
    return text
