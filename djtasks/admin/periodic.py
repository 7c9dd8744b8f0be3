"""Periodic tasks in the admin: edit, enable, disable, run now; the runs each one caused."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from djtasks.admin import display, redaction
from djtasks.admin.guard import GuardedAdmin
from djtasks.core import registry
from djtasks.core.exceptions import NotRegistered
from djtasks.periodic.beat import run_now
from djtasks.periodic.models import SCHEDULE_FIELDS, PeriodicRun, PeriodicTask, Source
from djtasks.periodic.schedules import ScheduleError
from djtasks.record.models import TaskRecord

RECENT_RUNS = 20
# Rows from BEAT_SCHEDULE are defined in code: only `enabled` (and the description) is edited here.
SETTINGS_OWNED = ("name", "task", "args", "kwargs", "queue", "priority", *SCHEDULE_FIELDS)
# Shown instead of the arguments to a user without view_task_arguments: redacted, and read-only.
REDACTED_CALL = {"args": "args_redacted", "kwargs": "kwargs_redacted"}


def task_url(task_id: str) -> str:
    return reverse("admin:djtasks_taskrecord_change", args=[quote(task_id)])


class PeriodicTaskForm(forms.ModelForm):
    """The task is chosen among the tasks registered in this process; a row naming another is flagged."""

    class Meta:
        model = PeriodicTask
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = self.fields.get("task")
        if field is None:
            return
        names = registry.names()
        choices = [("", "---------"), *((name, name) for name in names)]
        current = self.instance.task if self.instance.pk else ""
        if current and current not in names:
            choices.append((current, _("%(name)s (not registered in this process)") % {"name": current}))
            field.help_text = _(
                "⚠ %(name)s is not a task registered here: choose one that is, or this row cannot be saved."
            ) % {"name": current}
        field.widget = forms.Select(choices=choices)


class PeriodicTaskAdmin(GuardedAdmin):
    form = PeriodicTaskForm
    list_display = (
        "name",
        "task",
        "schedule_text",
        "enabled",
        "source",
        "last_run_at",
        "next_run_at",
        "total_run_count",
    )
    list_filter = ("enabled", "source", "task")
    search_fields = ("name", "task")
    actions = ("enable", "disable", "run_selected_now")
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "description")}),
        (
            _("Schedule: fill in one"),
            {"fields": ("interval", "crontab", "timezone", "one_off_at", ("solar_event", "latitude", "longitude"))},
        ),
        (_("Call"), {"fields": ("args", "kwargs", "queue", "priority")}),
        (_("Runs"), {"fields": ("source", "last_run_at", "next_run_at", "total_run_count", "recent_runs")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """The arguments of an existing row, redacted and read-only, for a user who may not see them."""
        if obj is None or redaction.may_see_secrets(request):
            return self.fieldsets
        swap = REDACTED_CALL.get
        return [
            (title, {**options, "fields": tuple(swap(f, f) if isinstance(f, str) else f for f in options["fields"])})
            for title, options in self.fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        computed = ("source", "last_run_at", "next_run_at", "total_run_count", "recent_runs", *REDACTED_CALL.values())
        if obj is not None and obj.source == Source.SETTINGS:
            return (*SETTINGS_OWNED, *computed)
        return computed

    @admin.display(description=_("positional arguments"))
    def args_redacted(self, obj: PeriodicTask) -> SafeString:
        return display.pretty_json(redaction.Shown(False, obj.args, obj.kwargs).data(obj.args))

    @admin.display(description=_("keyword arguments"))
    def kwargs_redacted(self, obj: PeriodicTask) -> SafeString:
        return display.pretty_json(redaction.Shown(False, obj.args, obj.kwargs).data(obj.kwargs))

    def save_model(self, request: HttpRequest, obj: PeriodicTask, form: Any, change: bool) -> None:
        """Replan when the schedule changes or the task is enabled; leave the beat's own fields alone."""
        if not change:
            obj.source = Source.ADMIN
            obj.plan_first_run()
            obj.save()
            return
        changed = set(form.changed_data)
        fields = [name for name in changed if name in {f.name for f in obj._meta.concrete_fields}]
        if changed & {*SCHEDULE_FIELDS, "enabled"} and obj.enabled:
            obj.plan_first_run()
            fields.append("next_run_at")
        obj.save(update_fields=[*fields, "changed_at"])

    @admin.display(description=_("schedule"))
    def schedule_text(self, obj: PeriodicTask) -> str:
        try:
            return obj.schedule.describe()
        except ScheduleError as exc:
            return f"invalid: {exc}"

    @admin.display(description=_("recent runs"))
    def recent_runs(self, obj: PeriodicTask) -> str:
        runs = list(obj.runs.order_by("-scheduled_for")[:RECENT_RUNS])
        if not runs:
            return "-"
        states = dict(TaskRecord.objects.filter(pk__in=[r.task_id for r in runs]).values_list("id", "state"))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(run.scheduled_for).isoformat(sep=" ", timespec="seconds"),
                    timezone.localtime(run.fired_at).isoformat(sep=" ", timespec="seconds"),
                    task_url(run.task_id),
                    run.task_id,
                    states.get(run.task_id, "expired"),
                    _("by hand") if run.manual else run.worker,
                )
                for run in runs
            ),
        )
        history = reverse("admin:djtasks_periodicrun_changelist") + f"?periodic_task__id__exact={obj.pk}"
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>{}</table><a href='{}'>{}</a>",
            _("scheduled for"),
            _("fired at"),
            _("task"),
            _("state"),
            _("fired by"),
            rows,
            history,
            _("All runs"),
        )

    @admin.action(description=_("Enable selected periodic tasks"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = 0
        for row in queryset.filter(enabled=False):
            row.enabled = True
            row.plan_first_run()
            row.save(update_fields=["enabled", "next_run_at", "changed_at"])
            count += 1
        self.message_user(request, f"{count} periodic task(s) enabled.", messages.SUCCESS)

    @admin.action(description=_("Disable selected periodic tasks"), permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = queryset.update(enabled=False, changed_at=timezone.now())
        self.message_user(request, f"{count} periodic task(s) disabled.", messages.SUCCESS)

    @admin.action(description=_("Run selected periodic tasks now"), permissions=["change"])
    def run_selected_now(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        for row in queryset:
            try:
                task_id = run_now(row, worker=f"admin:{request.user}")
            except NotRegistered:
                self.message_user(request, f"{row.name}: task {row.task!r} is not registered.", messages.ERROR)
            else:
                self.message_user(request, f"{row.name}: enqueued task {task_id}.", messages.SUCCESS)


class PeriodicRunAdmin(GuardedAdmin):
    list_display = ("periodic_task", "scheduled_for", "fired_at", "task_link", "worker", "manual")
    list_filter = ("periodic_task", "manual")
    search_fields = ("=task_id", "periodic_task__name")
    list_select_related = ("periodic_task",)
    readonly_fields = ("periodic_task", "scheduled_for", "fired_at", "task_link", "worker", "manual")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("task"))
    def task_link(self, obj: PeriodicRun) -> str:
        return format_html("<a href='{}'>{}</a>", task_url(obj.task_id), obj.task_id)
