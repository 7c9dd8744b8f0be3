"""Dead letters in the admin: read-only, with their reasons, re-queueable once their cause is fixed."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy

from djtasks.admin import redaction
from djtasks.admin.guard import sees_secrets
from djtasks.admin.tasks import ReadOnlyAdmin
from djtasks.calling.deadletters import finished_states, requeue
from djtasks.record.models import DeadLetter

CONFIRM = "run_finished_again"


class DeadLetterAdmin(ReadOnlyAdmin):
    actions = ["requeue"]
    list_display = ("created_at", "task_id", "task_name", "queue", "reason_text")
    list_filter = ("queue", "created_at")
    search_fields = ("=task_id", "task_name")
    search_help_text = gettext_lazy("An exact task id or part of a task name.")
    fields = readonly_fields = ("created_at", "task_id", "task_name", "queue", "reason_text", "raw_text")

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadLetter]:
        return redaction.with_calls(super().get_queryset(request))

    @admin.display(description=gettext_lazy("reason"))
    def reason_text(self, obj: DeadLetter) -> str:
        return redaction.for_letter(sees_secrets(obj), obj).text(obj.reason)

    @admin.display(description=gettext_lazy("raw message"))
    def raw_text(self, obj: DeadLetter) -> str:
        return redaction.for_letter(sees_secrets(obj), obj).raw(obj.raw)

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        """Requeueing deletes the letter and runs its task: it takes both rights."""
        return self.has_delete_permission(request) and request.user.has_perm("djtasks.retry_task")

    @admin.action(description=gettext_lazy("Requeue the selected messages' tasks"), permissions=["requeue"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> HttpResponse | None:
        """Requeue; a task that already finished runs again only once the user confirmed it on a page of its own."""
        letters = list(queryset)
        finished = finished_states(letters)
        confirmed = request.POST.get(CONFIRM) == "yes"
        if finished and not confirmed:
            return self.confirmation(request, letters, finished)
        for letter in letters:
            outcome = requeue(letter, run_finished=confirmed and letter.task_id in finished)
            self.message_user(request, outcome.text, messages.SUCCESS if outcome.done else messages.WARNING)
        return None

    def confirmation(self, request: HttpRequest, letters: list[DeadLetter], finished: dict[str, str]) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": gettext_lazy("Run finished tasks again?"),
            "opts": self.model._meta,
            "letters": [(letter, finished.get(letter.task_id, "")) for letter in letters],
            "confirm_field": CONFIRM,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/djtasks/deadletter/requeue_confirmation.html", context)
