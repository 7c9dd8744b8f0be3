"""Dead letters in the admin: read-only, with their reasons."""

from __future__ import annotations

from .tasks import ReadOnlyAdmin


class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "task_id", "task_name", "queue", "reason")
    list_filter = ("queue", "created_at")
    search_fields = ("=task_id", "task_name", "reason")
    readonly_fields = ("created_at", "task_id", "task_name", "queue", "reason", "raw")
