"""Public import path ``djtasks.overrides``; the code lives in ``djtasks.calling.overrides``."""

from djtasks.calling.overrides import (
    clear_time_limit,
    read_time_limits,
    set_time_limit,
)

__all__ = [
    "clear_time_limit",
    "read_time_limits",
    "set_time_limit",
]
