"""djtasks in the Django admin: tasks, the dashboard, dead letters, periodic tasks and their runs."""

from django.contrib import admin

from djtasks.admin.dashboard import DashboardAdmin
from djtasks.admin.deadletters import DeadLetterAdmin
from djtasks.admin.periodic import PeriodicRunAdmin, PeriodicTaskAdmin
from djtasks.admin.tasks import TaskRecordAdmin
from djtasks.periodic.models import PeriodicRun, PeriodicTask
from djtasks.record.models import Dashboard, DeadLetter, TaskRecord

admin.site.register(TaskRecord, TaskRecordAdmin)
admin.site.register(Dashboard, DashboardAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
admin.site.register(PeriodicRun, PeriodicRunAdmin)

__all__ = ["DashboardAdmin", "DeadLetterAdmin", "PeriodicRunAdmin", "PeriodicTaskAdmin", "TaskRecordAdmin"]
