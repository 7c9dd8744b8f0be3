"""Read the events stream from a position that always moves on, past entries nobody can read.

The transport skips an entry whose payload it cannot decode, so a reader that advances only
to the last event it got would meet the same unreadable entries again: at the end of the
stream XREAD would return them at once, forever, and the reader would spin. A Cursor notes
the stream's newest id before each read; when a read brings no event although entries were
there, it moves to that id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from djtasks.ops import events
from djtasks.transport.broker import Broker

CHUNK = 500  # stream entries per read


def position(entry_id: str) -> tuple[int, int]:
    """Return a stream id ("1700000000000-5", or "0") as numbers that sort as Redis sorts them."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


class Cursor:
    def __init__(self, after: str):
        self.after = after
        self.skipped = 0  # reads that moved past unreadable entries only

    def read(self, broker: Broker, *, block_ms: int | None, count: int = CHUNK) -> list[tuple[str, dict[str, Any]]]:
        """Return the (entry id, event) pairs after the cursor, and move it past what was read."""
        newest = broker.last_event_id()
        got = events.read(broker, self.after, block_ms=block_ms, count=count)
        if got:
            self.after = got[-1][0]
        elif newest is not None and position(newest) > position(self.after):
            self.after = newest
            self.skipped += 1
        return got


def follow(broker: Broker, after: str, *, block_s: float = 1.0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield events as they arrive, forever, from the entry id `after` ("$": the newest)."""
    cursor = Cursor((broker.last_event_id() or "0") if after == "$" else after)
    while True:
        yield from cursor.read(broker, block_ms=int(block_s * 1000))


def held(broker: Broker, after: str = "0") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield the events the stream holds after `after` (up to its newest entry now), then stop."""
    until = broker.last_event_id()
    cursor = Cursor(after)
    while until is not None and position(cursor.after) < position(until):
        before = cursor.after
        yield from cursor.read(broker, block_ms=None)
        if cursor.after == before:
            return
