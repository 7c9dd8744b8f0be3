"""Dead letters in the admin: read-only, with their reasons, re-queueable once their cause is fixed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from djtasks.admin.tasks import ReadOnlyAdmin
from djtasks.calling.deadletters import requeue


class DeadLetterAdmin(ReadOnlyAdmin):
    actions = ["requeue"]
    list_display = ("created_at", "task_id", "task_name", "queue", "reason")
    list_filter = ("queue", "created_at")
    search_fields = ("=task_id", "task_name", "reason")
    readonly_fields = ("created_at", "task_id", "task_name", "queue", "reason", "raw")

    @admin.action(description=gettext_lazy("Requeue the selected messages' tasks"), permissions=["delete"])
    def requeue(self, request: HttpRequest, queryset: Any) -> None:
        for letter in queryset:
            self.message_user(request, requeue(letter))
