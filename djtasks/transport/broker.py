"""The broker: one object with every transport operation, built once per process for the settings."""

from __future__ import annotations

import os

from djtasks.core.conf import Settings, get_settings
from djtasks.transport.connection import Command
from djtasks.transport.contents import Contents
from djtasks.transport.coordination import Coordination
from djtasks.transport.fleet import Fleet
from djtasks.transport.limits import Limits
from djtasks.transport.queues import Claim, Queues
from djtasks.transport.streams import Streams

__all__ = ["Broker", "Claim", "Command", "close_broker", "get_broker"]


class Broker(Queues, Contents, Coordination, Streams, Limits, Fleet):
    """Redis as the transport: queues and claims, what they hold, coordination, streams (errors: BrokerUnavailable)."""


_brokers: dict[tuple[int, Settings], Broker] = {}


def get_broker() -> Broker:
    """Return this process's broker for the current settings (a forked child builds its own)."""
    config = get_settings()
    key = (os.getpid(), config)
    broker = _brokers.get(key)
    if broker is None:
        _brokers.clear()
        broker = _brokers[key] = Broker(config)
    return broker


def close_broker() -> None:
    for broker in _brokers.values():
        broker.close()
    _brokers.clear()
