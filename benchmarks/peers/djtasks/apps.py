from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "peers.djtasks"
    label = "bench_djtasks"
