"""Sidekiq's Retries and Dead as task lists: tasks waiting to retry (run now), tasks that failed for good (retry)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from djtasks.admin import controls, display
from djtasks.admin.audit import audit
from djtasks.admin.filters import QueueFilter, TaskNameFilter
from djtasks.admin.tasks import TaskRecordAdmin
from djtasks.core.states import FAILURE, RETRY
from djtasks.record.models import TaskRecord


class NarrowedAdmin(TaskRecordAdmin):
    """The task list narrowed to one state: a list page only, each row linking to the task's own page."""

    state: str
    list_display_links = None  # type: ignore[assignment]
    list_filter = (TaskNameFilter, QueueFilter)  # type: ignore[assignment]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("djtasks.view_taskrecord")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskRecord]:
        return super().get_queryset(request).filter(state=self.state)

    def get_urls(self) -> list[Any]:
        name = f"djtasks_{self.model._meta.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    @admin.display(description=gettext_lazy("task"), ordering="id")
    def task_link(self, obj: TaskRecord) -> str:
        short = obj.id if len(obj.id) <= 13 else obj.id[:8] + "…"
        return format_html('<a class="djtasks-id" href="{}" title="{}">{}</a>', self.detail_url(obj.id), obj.id, short)

    @admin.display(description=gettext_lazy("error"))
    def error(self, obj: TaskRecord) -> str:
        return obj.exception_type.rpartition(".")[2] or "-"  # the class only: its message may quote a secret


class RetryingTaskAdmin(NarrowedAdmin):
    state = RETRY
    list_display = ("task_link", "task_name", "queue", "retries", "next_run", "error", "worker")  # type: ignore[assignment]
    ordering = ("eta",)
    actions = ("run_now",)  # type: ignore[assignment]

    @admin.display(description=gettext_lazy("next run"), ordering="eta")
    def next_run(self, obj: TaskRecord) -> str:
        return display.moment(obj.eta)

    def has_run_now_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("djtasks.run_task_now")

    @admin.action(
        description=gettext_lazy("Run selected tasks now (instead of at their retry time)"), permissions=["run_now"]
    )
    def run_now(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        moved = controls.run_tasks_now(queryset)
        self.message_user(request, f"{moved} task(s) made due now.", messages.SUCCESS)
        audit(request, "tasks", ", ".join(queryset.values_list("pk", flat=True)[:20]), f"run_now: {moved}")


class DeadTaskAdmin(NarrowedAdmin):
    state = FAILURE
    list_display = ("task_link", "task_name", "queue", "finished", "attempts", "error", "worker")  # type: ignore[assignment]
    ordering = ("-finished_at",)
    actions = ("retry_tasks",)  # type: ignore[assignment]
