from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "peers.celery_db"
    label = "bench_celery_db"
