"""A view that enqueues inside its transaction, as user code does."""

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from .testapp.models import Note
from .testapp.tasks import note_length


def signup(request: HttpRequest) -> JsonResponse:
    fail = request.POST.get("fail") == "1"
    try:
        with transaction.atomic():
            note = Note.objects.create(text=request.POST.get("text", ""))
            result = note_length.delay(note.pk)
            if fail:
                raise RuntimeError("the view failed after enqueueing")
    except RuntimeError:
        return JsonResponse({"ok": False}, status=500)
    return JsonResponse({"ok": True, "task_id": result.id, "note": note.pk})
