"""The task list and detail page, with retry and revoke guarded by their own permissions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from djtasks.admin import display, limits, redaction
from djtasks.admin.filters import QueueFilter, TaskNameFilter, WorkerFilter
from djtasks.admin.fleetdata import mark_waiting, waiting_on_page
from djtasks.admin.guard import GuardedAdmin, sees_secrets
from djtasks.admin.paging import COUNT_CAP, CappedPaginator
from djtasks.calling.rerun import rerun
from djtasks.calling.revoke import revoke
from djtasks.core.exceptions import NotRegistered
from djtasks.record.models import TaskRecord

RELATED_LIMIT = 50
BIG_COLUMNS = ("args", "kwargs", "result", "traceback", "errors", "worker_ids")


SEARCH_HELP = gettext_lazy("A task id, part of a task name, or text from the arguments.")
SEARCH_HELP_REDACTED = gettext_lazy(
    "Search by exact task id or part of a task name. Searching the arguments takes the permission "
    "“Can see task arguments and results unredacted”."
)


class ReadOnlyAdmin(GuardedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TaskRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "state_column",
        "name_column",
        "queue",
        "worker",
        "enqueued",
        "started",
        "finished",
        "run_time",
        "attempts",
    )
    list_display_links = ("short_id",)
    list_filter = ("state", TaskNameFilter, QueueFilter, WorkerFilter, ("enqueued_at", DateFieldListFilter))
    search_fields = ("=id", "task_name", "args", "kwargs")
    search_help_text = SEARCH_HELP
    show_full_result_count = False
    paginator = CappedPaginator
    # Facet counts are one COUNT per filter choice: too slow on a big table to offer.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    ordering = ("-enqueued_at",)
    actions = ("retry_tasks", "revoke_tasks", "terminate_tasks")
    change_form_template = "admin/djtasks/taskrecord/change_form.html"
    change_list_template = "admin/djtasks/taskrecord/change_list.html"
    fieldsets = (
        (None, {"fields": ("id", "task_name", "state_column", "queue", "priority", "worker", "attempts")}),
        (gettext_lazy("Outcome"), {"fields": ("exception_type", "exception_text")}),
    )

    class Media:
        css = {"all": ("djtasks/admin.css",)}

    # The list ---------------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_column(self, obj: TaskRecord) -> str:
        badge = display.state_badge(obj) + display.waiting_note(getattr(obj, "waiting_text", ""))
        if not (obj.is_running or obj.state == "STARTED"):
            return badge
        # The list does not load the arguments, so it cannot mask their values in a progress message.
        progress = obj.progress if sees_secrets(obj) else display.without_message(obj.progress)
        return badge + display.progress_bar(progress)

    @admin.display(description=gettext_lazy("task name"), ordering="task_name")
    def name_column(self, obj: TaskRecord) -> str:
        return display.task_name(obj)

    @admin.display(description=gettext_lazy("task id"), ordering="id")
    def short_id(self, obj: TaskRecord) -> str:
        return format_html(
            '<span class="djtasks-id" title="{}">{}</span>', obj.id, obj.id if len(obj.id) <= 13 else obj.id[:8] + "…"
        )

    @admin.display(description=gettext_lazy("enqueued at"), ordering="enqueued_at")
    def enqueued(self, obj: TaskRecord) -> str:
        return display.moment(obj.enqueued_at)

    @admin.display(description=gettext_lazy("started at"), ordering="started_at")
    def started(self, obj: TaskRecord) -> str:
        return display.moment(obj.started_at)

    @admin.display(description=gettext_lazy("finished at"), ordering="finished_at")
    def finished(self, obj: TaskRecord) -> str:
        return display.moment(obj.finished_at)

    @admin.display(description=gettext_lazy("run time"))
    def run_time(self, obj: TaskRecord) -> str:
        return display.duration(obj.runtime)

    @admin.display(description=gettext_lazy("exception message"))
    def exception_text(self, obj: TaskRecord) -> str:
        return redaction.for_task(sees_secrets(obj), obj).text(obj.exception_message)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"count_cap": COUNT_CAP, **(extra_context or {})})

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        changelist.search_help_text = str(SEARCH_HELP if redaction.may_see_secrets(request) else SEARCH_HELP_REDACTED)
        mark_waiting(list(changelist.result_list))  # "rate-limited until ...": one Redis read per queue shown
        return changelist

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskRecord]:
        # The list never shows the big JSON columns; the detail page loads the whole row (get_object).
        return super().get_queryset(request).defer(*BIG_COLUMNS)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> TaskRecord | None:
        """The whole row, with its viewer's flag (object_id is unquoted already)."""
        record = super().get_object(request, object_id, from_field)
        if record is not None:
            record.refresh_from_db(fields=BIG_COLUMNS)
        return record

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        """An exact task id is one index lookup; any other term scans names (and, with the right, arguments).

        Without view_task_arguments the arguments are not searched at all: matching on redacted text
        would let anyone recover a secret one guessed character at a time.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        if queryset.filter(pk=term).exists():
            return queryset.filter(pk=term), False
        match = Q(task_name__icontains=term)
        if redaction.may_see_secrets(request):
            match |= Q(args__icontains=term) | Q(kwargs__icontains=term)
        return queryset.filter(match), False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    # The detail page --------------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        record = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if record is not None and self.has_view_permission(request, record):
            context.update(self.detail_context(request, record))
        return super().change_view(request, object_id, form_url, context)

    def detail_context(self, request: HttpRequest, record: TaskRecord) -> dict[str, Any]:
        others = TaskRecord.objects.only(
            "id", "task_name", "state", "lease_expires_at", "progress", "enqueued_at", "parent_id", "group_id"
        )
        # Each query repeats its partial index's condition, so both databases use the index.
        # No ORDER BY in SQL: SQLite would walk the enqueued_at index over the whole table to avoid a sort.
        children = sorted(
            others.filter(parent_id=record.id).exclude(parent_id="").order_by()[:RELATED_LIMIT],
            key=lambda r: r.enqueued_at,
        )
        group_members = []
        if record.group_id:
            group_members = sorted(
                others.filter(group_id=record.group_id)
                .exclude(group_id="")
                .exclude(pk=record.pk)
                .order_by()[:RELATED_LIMIT],
                key=lambda r: r.enqueued_at,
            )
        parent = others.filter(pk=record.parent_id).first() if record.parent_id else None
        root = others.filter(pk=record.root_id).first() if record.root_id not in ("", record.parent_id) else None
        for related in [parent, root, *children, *group_members]:
            if related is not None:
                related.admin_url = self.detail_url(related.pk)  # type: ignore[attr-defined]
        shown = redaction.for_task(sees_secrets(record), record)
        reported = record.reported_state
        return {
            "task": record,
            "redacted": not shown.open,
            "args_json": display.pretty_json(shown.data(record.args)),
            "kwargs_json": display.pretty_json(shown.data(record.kwargs)),
            "result_json": display.pretty_json(shown.data(record.result)),
            "progress_bar": display.progress_bar(shown.data(record.progress)),
            "reported_state": reported[0] if reported else "",
            "reported_meta": display.pretty_json(shown.data(reported[1])) if reported else "",
            "call_options": display.pretty_json(shown.data(record.options)),
            "traceback": shown.text(record.traceback),
            "timeline": display.timeline(record),
            "run_time": display.duration(record.runtime),
            "waiting": waiting_on_page([record]).get(record.pk, ""),
            "attempt_errors": shown.data(record.errors or []),
            "key_rows": limits.detail_rows(record, shown.open),
            "parent": parent,
            "root": root,
            "children": children,
            "group_members": group_members,
            "may_retry": self.has_retry_permission(request),
            "may_revoke": self.has_revoke_permission(request) and record.state in ("PENDING", "RETRY", "STARTED"),
            "retry_url": reverse("admin:djtasks_taskrecord_retry", args=[quote(record.pk)]),
            "revoke_url": reverse("admin:djtasks_taskrecord_revoke", args=[quote(record.pk)]),
        }

    # Actions: bulk from the list, single from the detail page (POST with CSRF either way) -----

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("djtasks.retry_task")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("djtasks.revoke_task")

    @admin.action(description=gettext_lazy("Retry selected tasks (new tasks, same arguments)"), permissions=["retry"])
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> TaskRecord | None:
        created = None
        for record in queryset:
            try:
                created = rerun(record)
            except NotRegistered:
                self.message_user(
                    request,
                    _("Task %(id)s not retried: %(name)s is not a registered task.")
                    % {"id": record.id, "name": record.task_name},
                    messages.ERROR,
                )
                continue
            self.message_user(
                request, _("Task %(id)s retried as %(new)s.") % {"id": record.id, "new": created.id}, messages.SUCCESS
            )
        return created

    @admin.action(description=gettext_lazy("Revoke selected tasks (waiting ones never start)"), permissions=["revoke"])
    def revoke_tasks(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        self._revoke(request, queryset, terminate=False)

    @admin.action(description=gettext_lazy("Revoke selected tasks and terminate running ones"), permissions=["revoke"])
    def terminate_tasks(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        self._revoke(request, queryset, terminate=True)

    def _revoke(self, request: HttpRequest, queryset: QuerySet[TaskRecord], *, terminate: bool) -> None:
        outcomes: dict[str, list[str]] = {}
        for task_id in queryset.values_list("id", flat=True):
            outcomes.setdefault(revoke(task_id, terminate=terminate), []).append(task_id)
        for outcome, ids in outcomes.items():
            level = messages.SUCCESS if outcome.startswith("revoked") else messages.WARNING
            self.message_user(request, _("%(outcome)s: %(ids)s") % {"outcome": outcome, "ids": ", ".join(ids)}, level)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/retry/", wrap(self.retry_view), name="djtasks_taskrecord_retry"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name="djtasks_taskrecord_revoke"),
            *super().get_urls(),
        ]

    @staticmethod
    def detail_url(task_id: str) -> str:
        return reverse("admin:djtasks_taskrecord_change", args=[quote(task_id)])

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._retry_one)(request, object_id)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._revoke_one)(request, object_id)

    def _retry_one(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not (self.has_view_permission(request) and self.has_retry_permission(request)):
            raise PermissionDenied
        original = get_object_or_404(TaskRecord, pk=unquote(object_id))
        created = self.retry_tasks(request, TaskRecord.objects.filter(pk=original.pk))
        return HttpResponseRedirect(self.detail_url(created.id if created else original.pk))

    def _revoke_one(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not (self.has_view_permission(request) and self.has_revoke_permission(request)):
            raise PermissionDenied
        original = get_object_or_404(TaskRecord, pk=unquote(object_id))
        self.revoke_tasks(request, TaskRecord.objects.filter(pk=original.pk))
        return HttpResponseRedirect(self.detail_url(original.pk))
