"""Build the Redis client REDIS_URL names: one server, a Redis Cluster (any node of it), or Sentinel.

Every client fails fast (no retries of its own: the callers retry, with backoff) and every call
has SOCKET_TIMEOUT. A cluster is detected by asking the node (INFO cluster) the first time the
client is needed, so building a broker never waits for Redis.

- Sentinel (redis.sentinel): the client asks the sentinels for the primary on every new
  connection; a connection that finds the primary gone or demoted to a replica (ReadOnlyError)
  is dropped and the next one asks again, so a failover is followed without a restart.
- Cluster (redis.cluster.RedisCluster): commands go to the node of their key's slot, MOVED and
  ASK redirections (a resharding) are followed and TRYAGAIN is retried by the client.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.driver_info import DriverInfo
from redis.retry import Retry
from redis.sentinel import Sentinel

from djtasks.core.conf import Settings
from djtasks.core.redis_url import SENTINEL_OPTIONS, is_sentinel, parse_sentinel

Client = redis.Redis | RedisCluster


@cache
def driver_info() -> DriverInfo:
    """What every connection tells Redis it is (CLIENT SETINFO: redis-py and its version), found once.

    redis-py reads its own version from the installed package's metadata for every client built
    (about 1 ms: importlib.metadata walks sys.path and parses METADATA); found once, in the worker's
    parent before it forks, the children build their clients without it.
    """
    return DriverInfo()


def _timeouts(config: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": config.SOCKET_TIMEOUT,
        "socket_connect_timeout": config.SOCKET_CONNECT_TIMEOUT,
        "driver_info": driver_info(),
    }


def _connection_options(config: Settings) -> dict[str, Any]:
    """REDIS_OPTIONS for the data connections (the Sentinel-only keys left out), and djtasks' own."""
    options = {k: v for k, v in config.REDIS_OPTIONS.items() if k not in SENTINEL_OPTIONS}
    return {"health_check_interval": 30, **options, **_timeouts(config)}


def sentinel_client(config: Settings) -> redis.Redis:
    """Return a client of the primary the sentinels name (master_name), found again after a failover."""
    address = parse_sentinel(config.REDIS_URL)
    options = config.REDIS_OPTIONS
    sentinel = Sentinel(
        list(address.sentinels),
        min_other_sentinels=options.get("min_other_sentinels", 0),
        sentinel_kwargs={**_timeouts(config), **options.get("sentinel_kwargs", {})},
    )
    credentials = {k: v for k, v in (("username", address.username), ("password", address.password)) if v}
    return sentinel.master_for(
        options["master_name"],
        db=address.db,
        retry=Retry(NoBackoff(), 0),
        **{**credentials, **_connection_options(config)},
    )


def server_client(config: Settings) -> redis.Redis:
    """Return a client of one server (or, before detection, of the cluster node the URL names)."""
    return redis.Redis.from_url(config.REDIS_URL, retry=Retry(NoBackoff(), 0), **_connection_options(config))


def cluster_client(config: Settings) -> RedisCluster:
    """Return a cluster client that starts from the node the URL names and learns the others."""
    return RedisCluster.from_url(config.REDIS_URL, retry=Retry(NoBackoff(), 0), **_connection_options(config))


def is_cluster_node(client: redis.Redis) -> bool:
    """Ask a server whether it is a node of a Redis Cluster (one round trip; raises if unreachable)."""
    info: Any = client.info("cluster")
    return bool(info.get("cluster_enabled"))


def make_client(config: Settings) -> Client:
    """Return the client for REDIS_URL: Sentinel's primary, a cluster, or one server (may ask Redis which)."""
    if is_sentinel(config.REDIS_URL):
        return sentinel_client(config)
    if config.REDIS_URL.startswith("unix://"):
        return server_client(config)
    probe = server_client(config)
    try:
        if is_cluster_node(probe):
            return cluster_client(config)
    except BaseException:
        probe.close()
        raise
    return probe
