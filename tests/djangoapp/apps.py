from django.apps import AppConfig


class DjangoappConfig(AppConfig):
    """An app that knows only django.tasks; it must run unchanged on djtasks."""

    name = "tests.djangoapp"
    label = "djangoapp"

    def ready(self) -> None:
        from . import signals  # noqa: F401
