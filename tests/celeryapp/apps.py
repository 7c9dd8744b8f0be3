from django.apps import AppConfig


class CeleryappConfig(AppConfig):
    """The tasks of Celery's documentation, and receivers of Celery's signals for the tests that read them."""

    name = "tests.celeryapp"
    label = "celeryapp"

    def ready(self) -> None:
        from . import receivers  # noqa: F401
