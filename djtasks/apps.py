from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _


class DjtasksConfig(AppConfig):
    name = "djtasks"
    verbose_name = _("Tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from djtasks import checks  # noqa: F401 - registers the system checks
        from djtasks.calling import (
            builtins,  # noqa: F401 - registers djtasks.map and djtasks.starmap
            inline,
        )
        from djtasks.calling.publisher import on_task_saved
        from djtasks.record import wal
        from djtasks.record.models import TaskRecord
        from djtasks.worker import eager

        inline.set_runner(eager.run)  # eager mode (TASK_ALWAYS_EAGER) runs rows with the worker's executor

        wal.leave_checkpoints_to_the_worker()  # SQLite: the worker's parent copies the log
        post_save.connect(on_task_saved, sender=TaskRecord, dispatch_uid="djtasks.publish_on_commit")
        # Every installed app's tasks.py, in the web process and the worker alike.
        autodiscover_modules("tasks")
