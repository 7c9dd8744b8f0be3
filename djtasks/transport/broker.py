"""The broker: one object with every transport operation, built once per process for the settings."""

from __future__ import annotations

import json
import os

from djtasks.core.conf import Settings, get_settings
from djtasks.transport.connection import Command
from djtasks.transport.contents import Contents
from djtasks.transport.coordination import Coordination
from djtasks.transport.fleet import Fleet
from djtasks.transport.legacy import Legacy
from djtasks.transport.limits import Limits
from djtasks.transport.queues import Claim, Queues, Reserved
from djtasks.transport.streams import Streams

__all__ = ["Broker", "Claim", "Command", "Reserved", "close_broker", "get_broker"]


class Broker(Limits, Queues, Contents, Legacy, Coordination, Streams, Fleet):
    """Redis as the transport: queues and claims, what they hold, coordination, streams, limits (unique tasks,
    caps, keyed rates), steering the fleet (errors: BrokerUnavailable).

    Key names and their hash slots: keys.py. One server, Sentinel or a cluster: clients.py.
    """


_brokers: dict[tuple[int, Settings, str], Broker] = {}


def get_broker() -> Broker:
    """Return this process's broker for the current settings (a forked child builds its own)."""
    config = get_settings()
    # REDIS_OPTIONS is a dict, outside Settings' equality: its JSON joins the key.
    key = (os.getpid(), config, json.dumps(config.REDIS_OPTIONS, sort_keys=True, default=repr))
    broker = _brokers.get(key)
    if broker is None:
        _brokers.clear()
        broker = _brokers[key] = Broker(config)
    return broker


def close_broker() -> None:
    for broker in _brokers.values():
        broker.close()
    _brokers.clear()
