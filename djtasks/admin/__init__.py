"""djtasks in the Django admin: tasks, the dashboard, the fleet, dead letters, periodic tasks and their runs."""

from django.contrib import admin

from djtasks.admin.dashboard import DashboardAdmin
from djtasks.admin.deadletters import DeadLetterAdmin
from djtasks.admin.fleet import FleetAdmin
from djtasks.admin.periodic import PeriodicRunAdmin, PeriodicTaskAdmin
from djtasks.admin.tasks import TaskRecordAdmin
from djtasks.admin.waiting import DeadTaskAdmin, RetryingTaskAdmin
from djtasks.periodic.models import PeriodicRun, PeriodicTask
from djtasks.record.models import Dashboard, DeadLetter, TaskRecord
from djtasks.record.steering import DeadTask, Fleet, RetryingTask

admin.site.register(TaskRecord, TaskRecordAdmin)
admin.site.register(Dashboard, DashboardAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
admin.site.register(PeriodicRun, PeriodicRunAdmin)
admin.site.register(Fleet, FleetAdmin)
admin.site.register(RetryingTask, RetryingTaskAdmin)
admin.site.register(DeadTask, DeadTaskAdmin)

__all__ = [
    "DashboardAdmin",
    "DeadLetterAdmin",
    "DeadTaskAdmin",
    "FleetAdmin",
    "PeriodicRunAdmin",
    "PeriodicTaskAdmin",
    "RetryingTaskAdmin",
    "TaskRecordAdmin",
]
