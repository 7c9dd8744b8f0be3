"""The demo's data: profiles with avatars, follows, posts and the per-user timelines they fan out to."""

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """A user's avatar and the thumbnails a task makes of it after upload."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    avatar = models.ImageField(upload_to="avatars/", blank=True)
    # Written by the make_thumbnails task; empty until it has run.
    thumbnail_small = models.ImageField(upload_to="avatars/thumbs/", blank=True)
    thumbnail_large = models.ImageField(upload_to="avatars/thumbs/", blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class Follow(models.Model):
    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following")
    followee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="social_follow_once"),
            models.CheckConstraint(condition=~models.Q(follower=models.F("followee")), name="social_follow_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.follower} follows {self.followee}"


class Post(models.Model):
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.author} at {self.created_at:%Y-%m-%d %H:%M}: {self.body[:40]}"


class TimelineEntry(models.Model):
    """A post delivered to one reader's home timeline (fan-out on write, as in Redis' Twitter clone)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="timeline")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="deliveries")

    class Meta:
        ordering = ["-post_id"]
        constraints = [models.UniqueConstraint(fields=["owner", "post"], name="social_timeline_once")]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"post {self.post_id} in the timeline of user {self.owner_id}"
