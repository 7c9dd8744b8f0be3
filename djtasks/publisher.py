"""Public import path ``djtasks.publisher``; the code lives in ``djtasks.calling.publisher``."""

from djtasks.calling.publisher import (
    flush,
    publish,
    schedule,
)

__all__ = [
    "flush",
    "publish",
    "schedule",
]
