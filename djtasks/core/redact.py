"""Hide secret values in task data: any value under a key that contains a configured pattern."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "********"


def redact(value: Any, patterns: Iterable[str]) -> Any:
    """Return a copy of JSON data with values under secret-looking keys masked, at any depth."""
    lowered = tuple(p.lower() for p in patterns)
    return _redact(value, lowered) if lowered else value


def is_secret(key: str, patterns: tuple[str, ...]) -> bool:
    name = key.lower()
    return any(p in name for p in patterns)


def _redact(value: Any, patterns: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: MASK if is_secret(str(k), patterns) else _redact(v, patterns) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, patterns) for v in value]
    return value
