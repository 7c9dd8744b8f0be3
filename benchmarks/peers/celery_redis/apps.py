from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "peers.celery_redis"
    label = "bench_celery_redis"
