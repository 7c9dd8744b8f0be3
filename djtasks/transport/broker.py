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
# (pid, settings object, broker) of the last call whose REDIS_OPTIONS were empty: the key's hash of
# 40 settings and its JSON cost 7.5 µs of every enqueue's 8; the same object, still without options,
# in the same process, has the same key.
_last: list[tuple[int, Settings, Broker]] = []


def get_broker() -> Broker:
    """Return this process's broker for the current settings (a forked child builds its own)."""
    config, pid = get_settings(), os.getpid()
    if _last and not config.REDIS_OPTIONS and _last[0][1] is config and _last[0][0] == pid:
        return _last[0][2]
    # REDIS_OPTIONS is a dict, outside Settings' equality: its JSON joins the key.
    options = json.dumps(config.REDIS_OPTIONS, sort_keys=True, default=repr)
    broker = _brokers.get((pid, config, options))
    if broker is None:
        _brokers.clear()
        broker = _brokers[pid, config, options] = Broker(config)
    _last[:] = [] if config.REDIS_OPTIONS else [(pid, config, broker)]
    return broker


def close_broker() -> None:
    for broker in _brokers.values():
        broker.close()
    _brokers.clear()
    _last.clear()
