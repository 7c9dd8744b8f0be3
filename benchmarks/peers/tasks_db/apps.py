from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "peers.tasks_db"
    label = "bench_tasks_db"
