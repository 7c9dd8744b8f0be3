"""The Celery app of this project, configured from Django settings (CELERY_ namespace)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peers.celery_redis.settings")

from celery import Celery  # noqa: E402

app = Celery("bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
