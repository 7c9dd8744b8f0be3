"""Celery 5 with Redis as both the broker and the result backend."""

from peers.common import BASE, REDIS_URL

globals().update(BASE)
INSTALLED_APPS = ["peers.celery_redis.apps.BenchConfig"]
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
# Redis transport priorities: 0 is the highest; the worker takes the highest step first. A message
# without a priority counts as 0, so ordinary tasks get 5 and the high-priority probe 0.
CELERY_BROKER_TRANSPORT_OPTIONS = {"queue_order_strategy": "priority", "priority_steps": list(range(10))}
CELERY_TASK_DEFAULT_PRIORITY = 5
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
