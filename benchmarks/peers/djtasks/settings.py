"""djtasks: results in the database the harness chose, Redis as the transport."""

from peers.common import BASE, REDIS_URL

globals().update(BASE)
INSTALLED_APPS = ["djtasks", "peers.djtasks.apps.BenchConfig"]
TASKS = {"default": {"BACKEND": "djtasks.backend.RedisBackend"}}
DJTASKS = {"REDIS_URL": REDIS_URL, "PREFIX": "bench"}
