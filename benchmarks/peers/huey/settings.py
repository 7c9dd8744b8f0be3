"""Huey 3 through huey.contrib.djhuey: RedisHuey, results in Redis, woken by notify_result."""

from peers.common import BASE, REDIS_URL

globals().update(BASE)
INSTALLED_APPS = ["huey.contrib.djhuey", "peers.huey.apps.BenchConfig"]
HUEY = {
    "huey_class": "huey.RedisHuey",
    "name": "bench",
    "immediate": False,
    "results": True,
    "notify_result": True,
    "connection": {"url": REDIS_URL},
    "consumer": {"workers": 2, "worker_type": "process"},
}
