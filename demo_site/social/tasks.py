"""Tasks of the demo app; djtasks finds them because they live in tasks.py."""

import logging
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from djtasks import report_progress, task

from . import search
from .cleanup import cleanup
from .models import Follow, Post, TimelineEntry
from .reports import activity_report
from .thumbnails import make_thumbnails

logger = logging.getLogger(__name__)


@task
def add(x, y):
    """Add two numbers (the hello-world task)."""
    return x + y


@task
def fan_out_post(post_id):
    """Deliver a new post to its author's and every follower's timeline, in chunks when there are many."""
    post = Post.objects.filter(pk=post_id).only("author_id").first()
    if post is None:
        return {"delivered": 0, "chunks": 0}
    readers = list(
        Follow.objects.filter(followee_id=post.author_id).order_by("follower_id").values_list("follower_id", flat=True)
    )
    readers.insert(0, post.author_id)
    size = settings.DEMO_FANOUT_CHUNK_SIZE
    if len(readers) <= size:
        deliver_post(post_id, readers)
        return {"delivered": len(readers), "chunks": 0}
    chunks = [readers[i : i + size] for i in range(0, len(readers), size)]
    # One transaction: every chunk task is recorded, or none is (and this task fails and can be retried).
    with transaction.atomic():
        for chunk in chunks:
            deliver_post.delay(post_id, chunk)
    return {"delivered": 0, "chunks": len(chunks), "readers": len(readers)}


@task
def deliver_post(post_id, reader_ids):
    """Add a post to the timelines of these readers; delivering twice changes nothing."""
    if not Post.objects.filter(pk=post_id).exists():
        return 0
    entries = [TimelineEntry(owner_id=reader_id, post_id=post_id) for reader_id in reader_ids]
    TimelineEntry.objects.bulk_create(entries, ignore_conflicts=True, batch_size=500)
    return len(entries)


@task(queue="emails")
def send_follow_email(follow_id):
    """Tell a user by email that someone follows them (runs on the "emails" queue's worker)."""
    follow = Follow.objects.select_related("follower", "followee").filter(pk=follow_id).first()
    if follow is None or not follow.followee.email:
        return False
    profile_url = settings.DEMO_SITE_URL.rstrip("/") + reverse("social:profile", args=[follow.follower.username])
    send_mail(
        subject=f"{follow.follower.username} now follows you",
        message=f"Hello {follow.followee.username},\n\n{follow.follower.username} now follows you: {profile_url}\n",
        from_email=None,
        recipient_list=[follow.followee.email],
    )
    return True


@task
def make_avatar_thumbnails(user_id):
    """Make the small and large thumbnails of a user's uploaded avatar."""
    return make_thumbnails(user_id)


@task
def reindex_post(post_id):
    """Bring the search index up to date with one post: index its text, or drop it if it is gone."""
    body = Post.objects.filter(pk=post_id).values_list("body", flat=True).first()
    if body is None:
        search.remove_post(post_id)
        return "removed"
    search.index_post(post_id, body)
    return "indexed"


@task
def cleanup_demo():
    """Trim timelines and delete old demo files (what a cron job would do; schedule it once it can be)."""
    return cleanup()


@task(track_started=True)
def build_activity_report(days=14, seconds_per_day=0.5):
    """Count posts, follows and new users per day, reporting progress as it goes (slow on purpose)."""

    def progress(done, total, message):
        report_progress(done, total, message)
        if done < total:
            time.sleep(seconds_per_day)

    return activity_report(get_user_model(), days, progress)
