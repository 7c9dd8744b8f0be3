"""The admin's fleet pages as models: the permissions to steer workers, queues and limits, and two task views.

Proxies of the task row, with no table of their own: Fleet holds the pages that steer the fleet
(workers, queues, task limits, scheduled work) and their permissions, one per kind of control;
RetryingTask and DeadTask are the task list narrowed to tasks waiting to retry and tasks that
failed for good (Sidekiq's Retries and Dead).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from djtasks.record.models import TaskRecord

FLEET_PERMISSIONS = [
    ("shutdown_worker", _("Can shut down workers")),
    ("resize_pool", _("Can grow and shrink worker pools")),
    ("manage_consumers", _("Can add and cancel the queues workers consume")),
    ("change_rate_limit", _("Can change and reset task rate limits")),
    ("change_time_limit", _("Can change and reset task time limits")),
    ("pause_queue", _("Can pause and resume queues")),
    ("purge_queue", _("Can purge queues (revoking their waiting tasks)")),
    ("run_task_now", _("Can run scheduled and retrying tasks now")),
]


class Fleet(TaskRecord):
    """Workers, queues, task limits and scheduled work, steered from the admin."""

    class Meta:
        proxy = True
        verbose_name = _("fleet")
        verbose_name_plural = _("fleet: workers, queues, limits, scheduled")
        default_permissions = ()
        permissions = tuple(FLEET_PERMISSIONS)


class RetryingTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = _("retrying task")
        verbose_name_plural = _("retrying tasks")
        default_permissions = ()


class DeadTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = _("dead task")
        verbose_name_plural = _("dead tasks (failed for good)")
        default_permissions = ()
