"""Read the events stream and format one event per line (djtasks.ops.top.stream follows it live)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from djtasks.transport.broker import Broker
from djtasks.transport.decode import number


def read(
    broker: Broker, after: str = "0", *, block_ms: int | None = None, count: int = 500
) -> list[tuple[str, dict[str, Any]]]:
    """Return (stream entry id, event) pairs after the given entry id ("0": all kept), in order.

    An entry holds the events one worker wrote in one round trip, so several events share its id.
    """
    return broker.read_events(after, block_ms=block_ms, count=count)


def line(event: dict[str, Any]) -> str:
    """Format an event as one readable line (whatever its fields hold)."""
    at = _clock(event.get("ts"))
    kind = str(event.get("type", "?"))
    worker = event.get("worker") or "-"
    if kind.startswith("task-"):
        text = f"{at} {kind:<15} {event.get('name', '?')}[{event.get('id', '?')}] queue={event.get('queue', '?')}"
        if (runtime := number(event.get("runtime"))) is not None:
            text += f" runtime={runtime:.3f}s"
        if event.get("exception"):
            text += f" exception={event['exception']!r}"
        if event.get("reason"):
            text += f" reason={event['reason']!r}"
        return f"{text} worker={worker}"
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in {"type", "ts", "worker"})
    return f"{at} {kind:<15} {worker} {rest}".rstrip()


def _clock(ts: object) -> str:
    """The time of day of a unix time, to the millisecond ("?" when it is not one)."""
    seconds = number(ts)
    try:
        return datetime.fromtimestamp(seconds or 0.0, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
    except (OverflowError, ValueError, OSError):
        return "?"
