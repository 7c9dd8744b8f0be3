"""The dashboard page at /admin/djtasks/dashboard/: a proxy model's changelist, rendered by hand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from djtasks.admin import display, limits, redaction
from djtasks.admin.pages import PageAdmin
from djtasks.admin.stats import Bucket, snapshot
from djtasks.core.states import State
from djtasks.record.models import DeadLetter

CHART_WIDTH = 600
CHART_HEIGHT = 120
REFRESH_SECONDS = 5


@dataclass
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    title: str


def chart(buckets: list[Bucket], label_format: str) -> dict[str, Any]:
    """Lay out stacked bars (succeeded below, failed on top) for a server-rendered SVG."""
    peak = max((b.succeeded + b.failed for b in buckets), default=0) or 1
    width = CHART_WIDTH / max(len(buckets), 1)
    bars = []
    for i, b in enumerate(buckets):
        ok = CHART_HEIGHT * b.succeeded / peak
        failed = CHART_HEIGHT * b.failed / peak
        when = formats.date_format(timezone.localtime(b.start), label_format)
        title = _("%(when)s: %(ok)d succeeded, %(failed)d failed") % {
            "when": when,
            "ok": b.succeeded,
            "failed": b.failed,
        }
        bars.append(
            Bar(i * width + 1, max(width - 2, 1), CHART_HEIGHT - ok, ok, CHART_HEIGHT - ok - failed, failed, title)
        )
    return {
        "bars": bars,
        "peak": peak,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "total_ok": sum(b.succeeded for b in buckets),
        "total_failed": sum(b.failed for b in buckets),
        "first": formats.date_format(timezone.localtime(buckets[0].start), label_format) if buckets else "",
    }


class DashboardAdmin(PageAdmin):
    """Shown to whoever may view tasks; it has no rows of its own."""

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(require_safe(self.changelist_view))
        return [path("", view, name="djtasks_dashboard_changelist")]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The page (GET only: it changes nothing); dead letters only for those who may view them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        may_see_letters = request.user.has_perm("djtasks.view_deadletter")
        snap = snapshot(dead_letters=redaction.with_calls(DeadLetter.objects.all()) if may_see_letters else None)
        open_ = redaction.may_see_secrets(request)
        for letter in snap.dead_letters:
            letter.reason_text = redaction.for_letter(open_, letter).text(letter.reason)  # type: ignore[attr-defined]
        states = [(value, label, snap.states.get(value, 0)) for value, label in State.choices]
        for queue in snap.queues:
            queue.oldest_text = display.duration(queue.oldest_age)  # type: ignore[attr-defined]
        for worker in snap.workers:
            worker["heartbeat_text"] = display.duration(worker.get("heartbeat_age"))
            worker["running"] = [
                (str(task_id), reverse("admin:djtasks_taskrecord_change", args=[quote(str(task_id))]))
                for task_id in worker["active"]
            ]
        # What runs, from Redis: the leases workers hold (TaskRecord says STARTED only with track_started).
        leased = sum(queue.reserved for queue in snap.queues)
        executing = sum(len(worker.get("running") or []) for worker in snap.workers)
        for task in snap.tasks:
            task.p50_text = display.duration(task.p50)  # type: ignore[attr-defined]
            task.p95_text = display.duration(task.p95)  # type: ignore[attr-defined]
        limit_rows, limit_error = limits.panel(open_)
        context = {
            **self.admin_site.each_context(request),
            "limit_rows": limit_rows,
            "limit_error": limit_error,
            "limits_declared": bool(limits.START),
            "title": _("Task dashboard"),
            "opts": self.model._meta,
            "snap": snap,
            "states": states,
            "leased": leased,
            "executing": executing,
            "hour_chart": chart(snap.hour, "H:i"),
            "day_chart": chart(snap.day, "D H:i"),
            "refresh_seconds": REFRESH_SECONDS,
            "media": self.media,
            "may_see_letters": may_see_letters,
            **(extra_context or {}),
        }
        template = "admin/djtasks/dashboard_body.html" if request.GET.get("partial") else "admin/djtasks/dashboard.html"
        return TemplateResponse(request, template, context)
