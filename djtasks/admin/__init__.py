"""djtasks in the Django admin: the task list and detail, the dashboard, dead letters."""

from django.contrib import admin

from ..models import Dashboard, DeadLetter, TaskRecord
from .dashboard import DashboardAdmin
from .deadletters import DeadLetterAdmin
from .tasks import TaskRecordAdmin

admin.site.register(TaskRecord, TaskRecordAdmin)
admin.site.register(Dashboard, DashboardAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)

# Periodic tasks have their own admin module; importing it registers it.
from .. import periodic_admin  # noqa: E402, F401

__all__ = ["DashboardAdmin", "DeadLetterAdmin", "TaskRecordAdmin"]
