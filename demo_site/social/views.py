"""Views of the demo. Every view that starts a task enqueues it inside transaction.atomic()
and returns at once: the task runs in a worker after COMMIT, and no view waits for one."""

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from djtasks import AsyncResult

from . import search as search_index
from .forms import AvatarForm, PostForm, ReportForm, SignUpForm
from .models import Follow, Post, Profile
from .tasks import build_activity_report, fan_out_post, make_avatar_thumbnails, send_follow_email

# States after which a task's row no longer changes.
FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}
User = get_user_model()


def _task_link(text, result):
    url = reverse("social:task-status", args=[result.id])
    return format_html('{} <a href="{}">(task {})</a>', text, url, result.id[:8])


@require_http_methods(["GET", "POST"])
def home(request):
    """Signed in: your timeline and a form to post. Otherwise: everyone's latest posts."""
    form = PostForm(request.POST or None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect("social:login")
        if form.is_valid():
            with transaction.atomic():
                post = Post.objects.create(author=request.user, body=form.cleaned_data["body"])
                # Written in this transaction, published after COMMIT: the worker always finds the post.
                # Saving the post also enqueued reindex_post (signals.py).
                result = fan_out_post.delay(post.pk)
            messages.success(request, _task_link("Posted; delivering it to your followers' timelines.", result))
            return redirect("social:home")
    if request.user.is_authenticated:
        posts = Post.objects.filter(deliveries__owner=request.user).select_related("author", "author__profile")
        title = "Your timeline"
    else:
        posts = Post.objects.select_related("author", "author__profile")
        title = "Latest posts"
    context = {"form": form, "posts": posts[:50], "title": title}
    if request.user.is_authenticated:
        context["suggestions"] = (
            User.objects.exclude(pk=request.user.pk).exclude(followers__follower=request.user).order_by("username")[:5]
        )
    return render(request, "social/home.html", context)


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            Profile.objects.create(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Follow someone to fill your timeline.")
        return redirect("social:home")
    return render(request, "social/signup.html", {"form": form})


@require_GET
def profile(request, username):
    person = get_object_or_404(User.objects.select_related("profile"), username=username)
    context = {
        "person": person,
        "posts": person.posts.select_related("author", "author__profile")[:50],
        "followers": person.followers.count(),
        "following": person.following.count(),
        "is_following": request.user.is_authenticated and person.followers.filter(follower=request.user).exists(),
        "avatar_form": AvatarForm() if request.user == person else None,
    }
    return render(request, "social/profile.html", context)


@login_required
@require_POST
def follow(request, username):
    person = get_object_or_404(User, username=username)
    if person == request.user:
        messages.error(request, "You cannot follow yourself.")
        return redirect("social:profile", username=username)
    with transaction.atomic():
        relation, created = Follow.objects.get_or_create(follower=request.user, followee=person)
        if created:
            result = send_follow_email.delay(relation.pk)
    if created:
        messages.success(request, _task_link(f"You follow {person.username}; they get an email.", result))
    return redirect("social:profile", username=username)


@login_required
@require_POST
def unfollow(request, username):
    Follow.objects.filter(follower=request.user, followee__username=username).delete()
    messages.success(request, f"You no longer follow {username}. Their posts stay in your timeline.")
    return redirect("social:profile", username=username)


@login_required
@require_POST
def upload_avatar(request):
    profile, _ = Profile.objects.get_or_create(user=request.user)
    form = AvatarForm(request.POST, request.FILES, instance=profile)
    if form.is_valid():
        with transaction.atomic():
            form.save()
            result = make_avatar_thumbnails.delay(request.user.pk)
        messages.success(request, _task_link("Avatar uploaded; its thumbnails are being made.", result))
    else:
        messages.error(request, " ".join(form.errors.get("avatar", ["That file cannot be used."])))
    return redirect("social:profile", username=request.user.username)


@require_GET
def search(request):
    query = request.GET.get("q", "").strip()
    ids = search_index.search(query) if query else []
    posts = Post.objects.filter(pk__in=ids).select_related("author", "author__profile") if ids else []
    return render(request, "social/search.html", {"query": query, "posts": posts})


@login_required
@require_http_methods(["GET", "POST"])
def reports(request):
    form = ReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            result = build_activity_report.delay(days=form.cleaned_data["days"])
        return redirect("social:report", task_id=result.id)
    return render(request, "social/reports.html", {"form": form})


@require_GET
def report(request, task_id):
    return render(request, "social/report.html", {"task_id": task_id})


@require_GET
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


@require_GET
def task_json(request, task_id):
    """A task's state, progress and (when it succeeded) result, for pages that poll."""
    result = AsyncResult(task_id)
    state = result.state
    return JsonResponse(
        {
            "id": task_id,
            "state": state,
            "finished": state in FINAL_STATES,
            "progress": result.progress,
            "result": result.result if state == "SUCCESS" else None,
        }
    )
