"""Building Redis clients: what would be the same for every client is found once per process.

The worker's parent builds its client before it forks, so its children build theirs without
reading the package's metadata or the Lua files again (each read runs code whose pages the child
would otherwise copy, and costs a millisecond or two of start-up).
"""

from __future__ import annotations

from importlib import metadata, resources

import pytest
import redis

from djtasks.core.conf import get_settings
from djtasks.transport import clients
from djtasks.transport.connection import Connection

pytestmark = pytest.mark.usefixtures("redis_server")


def test_building_clients_does_not_read_the_redis_package_metadata_again(monkeypatch):
    clients.make_client(get_settings()).close()  # as the parent does before forking
    reads: list[str] = []
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: reads.append(name) or real(name))
    for _ in range(3):
        clients.make_client(get_settings()).close()
    assert reads == []


def test_every_connection_still_tells_redis_its_library_and_version():
    """What CLIENT SETINFO sends on connect (Redis 7.2 and later show it in CLIENT INFO)."""
    client = clients.make_client(get_settings())
    try:
        connection = client.connection_pool.get_connection()
        try:
            info = connection.driver_info
            assert info is not None
            assert (info.formatted_name, info.lib_version) == ("redis-py", redis.__version__)
        finally:
            client.connection_pool.release(connection)
    finally:
        client.close()


def test_the_lua_scripts_are_read_from_the_package_once_per_process(monkeypatch):
    Connection(get_settings()).close()
    first = Connection(get_settings())
    first.scripts  # noqa: B018 (builds the client and registers the scripts)
    opened: list[str] = []
    real = resources.files
    monkeypatch.setattr(resources, "files", lambda package: opened.append(str(package)) or real(package))
    for _ in range(2):
        connection = Connection(get_settings())
        assert connection.scripts.claim.sha == first.scripts.claim.sha
        connection.close()
    first.close()
    assert opened == []
