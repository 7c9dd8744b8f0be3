"""Rates such as "10/m": parsed once, at declaration and when changed at runtime."""

from __future__ import annotations

import re

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_rate(rate: str | float | int | None) -> float:
    """Return the milliseconds between starts for "N/s", "N/m", "N/h" or N (per second); 0 means no limit."""
    if rate is None or rate == "":
        return 0.0
    match = _RATE.match(str(rate))
    if match is None:
        raise ValueError(f"rate_limit {rate!r} is not a rate such as '10/s', '10/m' or '10/h'")
    count = float(match.group(1))
    return 0.0 if count == 0 else _PERIODS[match.group(2)] * 1000.0 / count
