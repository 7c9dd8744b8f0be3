"""Task rows in the Django admin: browse, filter, search and read; rows are never edited by hand."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .deadletters import requeue
from .models import DeadLetter, TaskRecord
from .states import FAILURE, RETRY, REVOKED, STARTED, SUCCESS

STATE_COLOURS = {
    SUCCESS: "#2e7d32",
    FAILURE: "#c62828",
    STARTED: "#1565c0",
    RETRY: "#ef6c00",
    REVOKED: "#6d4c41",
}


def pretty_json(value: Any) -> str:
    return format_html("<pre style='white-space:pre-wrap;margin:0'>{}</pre>", json.dumps(value, indent=2, default=str))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TaskRecord)
class TaskRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "state_badge", "task_name", "queue", "worker", "enqueued_at", "started_at",
                    "finished_at", "run_time", "attempts")
    list_filter = ("state", "queue", "task_name", "enqueued_at")
    search_fields = ("=id", "task_name", "=root_id", "=group_id", "=parent_id")
    date_hierarchy = None
    show_full_result_count = False
    list_per_page = 50
    ordering = ("-enqueued_at",)
    fieldsets = (
        (None, {"fields": ("id", "task_name", "state_badge", "queue", "priority", "worker", "attempts")}),
        (_("Timeline"), {"fields": ("enqueued_at", "eta", "started_at", "finished_at", "run_time")}),
        (_("Call"), {"fields": ("args_pretty", "kwargs_pretty")}),
        (_("Outcome"), {"fields": ("result_pretty", "exception_type", "exception_message", "traceback_pretty",
                                   "errors_pretty")}),
        (_("Workflow"), {"fields": ("parent_id", "root_id", "group_id", "retries", "expires_at", "headers",
                                    "canvas"), "classes": ("collapse",)}),
    )

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: TaskRecord) -> str:
        colour = STATE_COLOURS.get(obj.state, "#757575")
        return format_html(
            "<span style='background:{};color:#fff;padding:2px 6px;border-radius:8px;font-size:11px'>{}</span>",
            colour, obj.get_state_display(),
        )

    @admin.display(description=_("run time"))
    def run_time(self, obj: TaskRecord) -> str:
        return "-" if obj.runtime is None else f"{obj.runtime:.3f} s"

    @admin.display(description=_("args"))
    def args_pretty(self, obj: TaskRecord) -> str:
        return pretty_json(obj.args)

    @admin.display(description=_("kwargs"))
    def kwargs_pretty(self, obj: TaskRecord) -> str:
        return pretty_json(obj.kwargs)

    @admin.display(description=_("result"))
    def result_pretty(self, obj: TaskRecord) -> str:
        return pretty_json(obj.result)

    @admin.display(description=_("traceback"))
    def traceback_pretty(self, obj: TaskRecord) -> str:
        return format_html("<pre style='white-space:pre-wrap;margin:0'>{}</pre>", obj.traceback or "-")

    @admin.display(description=_("errors of every attempt"))
    def errors_pretty(self, obj: TaskRecord) -> str:
        return pretty_json(obj.errors)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for fieldset in self.fieldsets for f in fieldset[1]["fields"]]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    actions = ["requeue"]
    list_display = ("created_at", "task_id", "task_name", "queue", "reason")
    list_filter = ("queue", "created_at")
    search_fields = ("=task_id", "task_name", "reason")
    readonly_fields = ("created_at", "task_id", "task_name", "queue", "reason", "raw")

    @admin.action(description=_("Requeue the selected messages' tasks"), permissions=["delete"])
    def requeue(self, request: HttpRequest, queryset: Any) -> None:
        for letter in queryset:
            self.message_user(request, requeue(letter))





# Periodic tasks have their own admin module; importing it registers it.
from . import periodic_admin  # noqa: E402, F401
