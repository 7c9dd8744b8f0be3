from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "peers.huey"
    label = "bench_huey"
