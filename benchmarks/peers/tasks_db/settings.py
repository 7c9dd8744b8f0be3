"""django-tasks-db: the ORM backend of django.tasks; results in the database the harness chose."""

from peers.common import BASE

globals().update(BASE)
INSTALLED_APPS = ["django_tasks_db", "peers.tasks_db.apps.BenchConfig"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
