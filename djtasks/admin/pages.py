"""The admin's own pages (the dashboard, the fleet): a model admin with no rows, shown to task viewers."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class PageAdmin(admin.ModelAdmin):
    """Shown to whoever may view tasks; it has no rows to add, change or delete (its controls ask for their own)."""

    class Media:
        css = {"all": ("djtasks/admin.css",)}

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("djtasks.view_taskrecord")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
