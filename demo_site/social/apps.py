from django.apps import AppConfig


class SocialConfig(AppConfig):
    name = "demo_site.social"
    label = "social"
    verbose_name = "Social (demo)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import signals  # noqa: F401 - connects the receivers
