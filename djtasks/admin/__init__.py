"""djtasks in the Django admin: the task list and detail, the dashboard, dead letters."""

from django.contrib import admin

from djtasks.admin.dashboard import DashboardAdmin
from djtasks.admin.deadletters import DeadLetterAdmin
from djtasks.admin.tasks import TaskRecordAdmin
from djtasks.record.models import Dashboard, DeadLetter, TaskRecord

admin.site.register(TaskRecord, TaskRecordAdmin)
admin.site.register(Dashboard, DashboardAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)

# Periodic tasks have their own admin module; importing it registers it.
from djtasks.periodic import admin as periodic_admin  # noqa: E402, F401

__all__ = ["DashboardAdmin", "DeadLetterAdmin", "TaskRecordAdmin"]
