"""The decoding boundary: total functions that turn what Redis holds into values, or say why not.

Everything the worker and the web side read from Redis passes through here. None of these
functions raises on bad data: each returns a value, or a defect (a reason) the caller acts on,
dead-lettering a message or skipping an entry with skipped(), a warning that names the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import unicodedata
from typing import Any

logger = logging.getLogger("djtasks")
MAX_ID_LENGTH = 255  # TaskRecord.id's max_length
# skipped(): one key logs at most SKIP_BURST warnings per SKIP_WINDOW seconds (the rest are
# counted and reported with its next warning), and the same entry at most once per SKIP_REPEAT.
SKIP_BURST = 100
SKIP_WINDOW = 60.0
SKIP_REPEAT = 600.0
_MAX_TRACKED = 10_000


def escaped(raw: bytes | str, limit: int = 4096) -> str:
    """Return raw as printable text that says exactly which bytes it was, cut after `limit` characters.

    Valid UTF-8 stays itself; a byte that is not UTF-8 becomes \\xNN (80 to ff), an ASCII control
    character \\xNN (00 to 1f, 7f), any other control character, line separator or lone surrogate
    \\uNNNN, a backslash \\\\: so no two inputs look alike.
    """
    head = raw[: limit * 4 + 4]
    text = head.decode("utf-8", "surrogateescape") if isinstance(head, bytes) else head
    out: list[str] = []
    size = 0
    for char in text:
        code = ord(char)
        if char == "\\":
            piece = "\\\\"
        elif 0xDC80 <= code <= 0xDCFF and isinstance(raw, bytes):
            piece = f"\\x{code - 0xDC00:02x}"
        elif unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            piece = f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"
        else:
            piece = char
        out.append(piece)
        size += len(piece)
        if size >= limit:
            out.append("...")
            break
    return "".join(out)


def task_id(raw: bytes) -> tuple[str, str]:
    """Decode a queued id: (the id, "") if it can be a row's id, else (its escaped bytes, the defect).

    A row id is UTF-8 text of 1 to 255 characters without NUL (which PostgreSQL refuses).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return escaped(raw, limit=1024), "the queued id is not valid UTF-8"
    if not text:
        return "", "the queued id is empty"
    if "\x00" in text:
        return escaped(raw, limit=1024), "the queued id contains a NUL character, which the database refuses"
    if len(text) > MAX_ID_LENGTH:
        return escaped(raw, limit=1024), f"the queued id is {len(text)} characters long, over {MAX_ID_LENGTH}"
    return text, ""


def text(raw: bytes | str) -> str | None:
    """Decode UTF-8 text without NUL (a name, a field), or None."""
    try:
        decoded = raw.decode("utf-8") if isinstance(raw, bytes) else raw.encode("utf-8").decode("utf-8")
    except UnicodeError:
        return None
    return None if "\x00" in decoded else decoded


def integer(raw: object) -> int | None:
    """Read a counter: an int, or an integer written in decimal; else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if not isinstance(raw, bytes | str) or not 0 < len(raw) <= 24:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def number(raw: object) -> float | None:
    """Read a finite number (a sum, a rate, a limit): an int, a float or its text; else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw) if isinstance(raw, float) or abs(raw) < 2**1023 else math.inf
    elif not isinstance(raw, bytes | str):
        return None
    else:
        if len(raw) > 400:
            return None
        try:
            value = float(raw if isinstance(raw, str) else raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
    return value if math.isfinite(value) else None


def loads(raw: bytes | str) -> tuple[Any, str]:
    """Parse JSON strictly (no NaN or Infinity): (value, "") or (None, the defect)."""
    try:
        return json.loads(raw, parse_constant=_refuse), ""
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON ({exc.__class__.__name__}: {str(exc)[:80]})"


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _Skips:
    """What skipped() has logged lately, per key and per entry."""

    def __init__(self) -> None:
        self.windows: dict[str, tuple[float, int, int]] = {}  # key -> (window start, logged, unlogged)
        self.seen: dict[tuple[str, str], float] = {}  # (key, digest) -> when last logged

    def note(self, key: str, entry: str, digest: str, reason: str) -> None:
        now = time.monotonic()
        if len(self.seen) > _MAX_TRACKED:
            self.seen = {k: at for k, at in self.seen.items() if now - at < SKIP_REPEAT}
            if len(self.seen) > _MAX_TRACKED:
                self.seen.clear()
        if now - self.seen.get((key, digest), -math.inf) < SKIP_REPEAT:
            return
        self.seen[(key, digest)] = now
        start, logged, unlogged = self.windows.get(key, (now, 0, 0))
        if now - start >= SKIP_WINDOW:
            start, logged = now, 0
        if logged >= SKIP_BURST:
            self.windows[key] = (start, logged, unlogged + 1)
            return
        self.windows[key] = (start, logged + 1, 0)
        more = f" ({unlogged} more skipped entries of this key were not logged)" if unlogged else ""
        logger.warning("Skipped an entry of %s (sha1 %s): %s: %s%s", key, digest, entry, reason, more)


_skips = _Skips()


def skipped(key: str, entry: bytes | str, reason: str) -> None:
    """Log, rate-limited, that an entry of a Redis key was undecodable and has been left out.

    The line names the key, the entry (escaped, cut at 200 characters) and the first 12 hex
    digits of the SHA-1 of its bytes (digest()), by which it can be found whatever its length.
    """
    _skips.note(key, escaped(entry, limit=200), digest(entry), reason)


def digest(entry: bytes | str) -> str:
    """The first 12 hex digits of the SHA-1 of an entry's bytes, as skipped() logs them."""
    raw = entry if isinstance(entry, bytes) else entry.encode("utf-8", "surrogatepass")
    return hashlib.sha1(raw).hexdigest()[:12]
