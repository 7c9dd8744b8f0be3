"""Tests under tests/cluster run against a real 3-master Redis Cluster instead of one redis-server.

The `redis_server` fixture is replaced by the cluster (one per pytest process, made with
redis-cli --cluster create), so the suite's own fixtures (`worker`, the Redis clean-up before
each test) and the existing tests imported here run unchanged, with REDIS_URL naming one node.
"""

from collections.abc import Iterator

import pytest

from tests.conftest import point_djtasks_at
from tests.support.rediscluster import ClusterAsServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ClusterAsServer]:
    cluster = ClusterAsServer()
    cluster.start()
    point_djtasks_at(cluster.url)
    yield cluster
    cluster.cleanup()
