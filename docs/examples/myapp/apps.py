from django.apps import AppConfig


class MyappConfig(AppConfig):
    """The documentation's example app: the `myapp` the pages import from."""

    name = "myapp"
