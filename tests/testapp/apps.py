from django.apps import AppConfig

from tests.support.inject import install_from_environment


class TestappConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"

    def ready(self) -> None:
        # Worker subprocesses of the resilience tests get faults injected (tests/support/inject.py).
        install_from_environment()
