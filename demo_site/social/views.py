from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from djtasks import AsyncResult

from .forms import PostForm
from .models import Post
from .tasks import count_words

# States after which a task's row no longer changes.
FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}


@require_http_methods(["GET", "POST"])
def home(request):
    """List the latest posts; on POST, publish a post and count its words in the background."""
    form = PostForm(request.POST or None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            with transaction.atomic():
                post = Post.objects.create(author=request.user, body=form.cleaned_data["body"])
                # The task row is written in this transaction and the message is
                # published only after COMMIT, so the worker always finds the post.
                result = count_words.delay(post.pk)
            return redirect("social:task-status", task_id=result.id)
    posts = Post.objects.select_related("author")[:50]
    return render(request, "social/home.html", {"form": form, "posts": posts})


def task_status(request, task_id):
    """Show a task's state, and its result or traceback once it has finished."""
    result = AsyncResult(task_id)
    state = result.state
    context = {
        "task_id": task_id,
        "state": state,
        "finished": state in FINAL_STATES,
        "result": result.result if state == "SUCCESS" else None,
        "traceback": result.traceback if state == "FAILURE" else None,
    }
    return render(request, "social/task_status.html", context)
