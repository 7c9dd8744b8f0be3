"""The fleet pages at /admin/djtasks/fleet/: workers, queues, task limits and scheduled work, with their controls.

Every page is a GET that changes nothing and needs djtasks.view_taskrecord; every control is a
POST to its own URL that needs its own permission (record/steering.py), answered with 403
without it; the outcome is shown as messages and logged in the admin's LogEntry history.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from djtasks.admin import controls, display
from djtasks.admin.fleetdata import scheduled, task_limits
from djtasks.admin.pages import PageAdmin
from djtasks.admin.stats import queues as queue_stats
from djtasks.admin.stats import workers as live_workers
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker

PAGES = {
    "changelist": ("", "Workers", "admin/djtasks/fleet/workers.html"),
    "queues": ("queues/", "Queues", "admin/djtasks/fleet/queues.html"),
    "limits": ("limits/", "Task limits", "admin/djtasks/fleet/limits.html"),
    "scheduled": ("scheduled/", "Scheduled", "admin/djtasks/fleet/scheduled.html"),
}


class FleetAdmin(PageAdmin):
    """Steer the fleet: shown to whoever may view tasks; each control asks for its own permission."""

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        urls = [
            path(route, wrap(require_safe(self._page(page))), name=f"djtasks_fleet_{page}")
            for page, (route, _title, _template) in PAGES.items()
        ]
        urls += [
            path(f"{name}/", wrap(require_POST(self._control(name))), name=f"djtasks_fleet_{name}")
            for name in controls.CONTROLS
        ]
        return urls

    def _page(self, page: str) -> Any:
        def view(request: HttpRequest) -> HttpResponse:
            if not self.has_view_permission(request):
                raise PermissionDenied
            return self.render(request, page)

        return view

    def _control(self, name: str) -> Any:
        def view(request: HttpRequest) -> HttpResponse:
            chosen = controls.CONTROLS[name]
            if not (self.has_view_permission(request) and request.user.has_perm(f"djtasks.{chosen.permission}")):
                raise PermissionDenied
            if name == "purge" and request.POST.get("confirm") != "yes":
                return self.purge_confirmation(request)
            controls.carry_out(request, name)
            return HttpResponseRedirect(self._back(request))

        return view

    def _back(self, request: HttpRequest) -> str:
        """Back to the page the form was on (an admin URL only), else the workers page."""
        target = request.POST.get("next", "")
        admin_root = reverse("admin:index")
        return (
            target
            if target.startswith(admin_root) and "//" not in target
            else reverse("admin:djtasks_fleet_changelist")
        )

    def render(self, request: HttpRequest, page: str, **extra: Any) -> HttpResponse:
        _route, title, template = PAGES[page]
        user = request.user
        context = {
            **self.admin_site.each_context(request),
            "title": _(title),
            "opts": self.model._meta,
            "media": self.media,
            "pages": [(key, _(t), reverse(f"admin:djtasks_fleet_{key}")) for key, (_r, t, _x) in PAGES.items()],
            "page": page,
            "may": {name: user.has_perm(f"djtasks.{c.permission}") for name, c in controls.CONTROLS.items()},
            "redis_error": "",
            **extra,
        }
        try:
            context.update(getattr(self, f"{page}_context")(request))
        except BrokerUnavailable as exc:
            context["redis_error"] = str(exc)
        return TemplateResponse(request, template, context)

    def changelist_context(self, request: HttpRequest) -> dict[str, Any]:
        workers = live_workers(timezone.now())
        for worker in workers:
            worker["heartbeat_text"] = display.duration(worker.get("heartbeat_age"))
            worker["running"] = [(str(pk), _task_url(str(pk))) for pk in worker.get("running") or []]
        return {"workers": workers}

    def queues_context(self, request: HttpRequest) -> dict[str, Any]:
        found = queue_stats(timezone.now())
        # Queues that hold work, the default one, and those a live worker consumes (so a queue can
        # be paused before its first task is sent).
        consumed = {
            name
            for worker in live_workers(timezone.now())
            if isinstance(worker.get("queues"), list)
            for name in worker["queues"]
            if isinstance(name, str) and name
        }
        names = {queue.name for queue in found} | {get_settings().DEFAULT_QUEUE} | consumed
        known = {q.name: q for q in found}
        paused = get_broker().paused(sorted(names))
        rows = []
        for name in sorted(names):
            queue = known.get(name)
            oldest = display.duration(queue.oldest_age if queue else None)
            waiting = TaskRecord.objects.filter(queue=name).unclaimed().count()
            rows.append(
                {"name": name, "stats": queue, "paused": paused.get(name), "waiting_rows": waiting, "oldest": oldest}
            )
        return {"queues": rows}

    def limits_context(self, request: HttpRequest) -> dict[str, Any]:
        return {"limits": task_limits(get_broker(), get_settings())}

    def scheduled_context(self, request: HttpRequest) -> dict[str, Any]:
        broker = get_broker()
        waiting = scheduled(broker, sorted(broker.queue_stats()), limit=200)
        for item in waiting:
            item.url = _task_url(item.task_id)  # type: ignore[attr-defined]
        return {"waiting": waiting}

    def purge_confirmation(self, request: HttpRequest) -> HttpResponse:
        queue = request.POST.get("queue", "").strip()
        count = TaskRecord.objects.filter(queue=queue).unclaimed().count()
        try:
            depth = get_broker().queue_stats().get(queue, {})
        except BrokerUnavailable:
            depth = {}
        if not queue:
            messages.error(request, "purge: queue is missing; nothing was changed")
            return HttpResponseRedirect(reverse("admin:djtasks_fleet_queues"))
        return self.render(request, "queues", confirm_purge={"queue": queue, "count": count, "depth": depth})


def _task_url(task_id: str) -> str:
    return reverse("admin:djtasks_taskrecord_change", args=[quote(task_id)])
