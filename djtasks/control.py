"""Public import path ``djtasks.control``; the code lives in ``djtasks.ops.control``."""

from djtasks.ops.control import (
    DEFAULT_TIMEOUT,
    Reply,
    add_consumer,
    broadcast,
    cancel_consumer,
    inspect,
    ping,
    pool_grow,
    pool_shrink,
    rate_limit,
    revoke,
    shutdown,
    status,
    time_limit,
    workers,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Reply",
    "add_consumer",
    "broadcast",
    "cancel_consumer",
    "inspect",
    "ping",
    "pool_grow",
    "pool_shrink",
    "rate_limit",
    "revoke",
    "shutdown",
    "status",
    "time_limit",
    "workers",
]
