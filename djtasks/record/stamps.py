"""The enqueue time's parameter on SQLite, made without a datetime: the text the field's conversion gives.

A new row's enqueued_at is timezone.now(), which SQLite stores as naive text in the connection's
zone: str(now.replace(tzinfo=None)), "YYYY-MM-DD HH:MM:SS.ffffff" (no fraction at a whole
second). Building the datetime and its text costs 2.4 µs of a bulk() call's 11; the text of the
current second is made once, and each call adds its microseconds (0.5 µs).
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from django.utils import timezone

# [(a second since the epoch, its text)]: one tuple, read and replaced whole (threads share it).
_SECOND: list[tuple[int, str]] = [(-1, "")]


def now_param(factory: Any, connection: Any) -> str | None:
    """The parameter of factory() for a DateTimeField on this connection, if it is timezone.now's on SQLite in UTC.

    None otherwise (another factory, USE_TZ off, another database or zone): convert factory() as the field does.
    """
    # connection.timezone is UTC only with USE_TZ on (Django resets it when USE_TZ or TIME_ZONE change).
    if factory is not timezone.now or connection.vendor != "sqlite" or connection.timezone is not datetime.UTC:
        return None
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    cached = _SECOND[0]
    if cached[0] != second:
        cached = _SECOND[0] = (second, str(datetime.datetime.fromtimestamp(second, datetime.UTC).replace(tzinfo=None)))
    return f"{cached[1]}.{fraction:06d}" if fraction else cached[1]
