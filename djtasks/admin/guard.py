"""The base of every djtasks ModelAdmin: actions, lookups and search checked against the user."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, QuerySet, Value
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse

from djtasks.admin.redaction import DATA_FIELDS, may_see_secrets

# Every row an admin lists or shows carries this flag, so display methods (which receive only the
# row) know whether its viewer may see secrets.
OPEN = "djtasks_viewer_sees_secrets"


class GuardedAdmin(admin.ModelAdmin):
    """Refuse (403) an action the user may not run; refuse (400) filters on task data without the right."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(**{OPEN: Value(may_see_secrets(request), BooleanField())})

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        self.refuse_forbidden_action(request, ActionLocation.CHANGE_LIST, "action")
        return super().changelist_view(request, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self.refuse_forbidden_action(request, ActionLocation.CHANGE_FORM, f"{ActionLocation.CHANGE_FORM.value}-action")
        return super().changeform_view(request, object_id, form_url, extra_context)

    def refuse_forbidden_action(self, request: HttpRequest, location: ActionLocation, field: str) -> None:
        """Django ignores an action the user may not run; say so instead, before anything runs."""
        if request.method != "POST":
            return
        asked = set(request.POST.getlist(field))
        known = {name for name, _ in self.admin_site.actions}
        known |= {action if isinstance(action, str) else action.__name__ for action in self.actions or ()}
        allowed = set(self.get_actions(request, action_location=location))
        if asked & (known - allowed):
            raise PermissionDenied

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # A filter on task data (?kwargs__icontains=...) would be a search for a redacted value.
        if not may_see_secrets(request) and DATA_FIELDS.intersection(lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)


def sees_secrets(obj: Any) -> bool:
    """Whether the user a row was fetched for may see its secrets (see GuardedAdmin.get_queryset)."""
    return bool(getattr(obj, OPEN, False))
