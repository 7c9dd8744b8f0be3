"""Model signal receivers: keep the search index up to date through a task."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Post
from .tasks import reindex_post


@receiver(post_save, sender=Post, dispatch_uid="social_reindex_saved_post")
@receiver(post_delete, sender=Post, dispatch_uid="social_reindex_deleted_post")
def reindex_on_change(sender, instance, **kwargs):
    # The task row joins the transaction that saves the post; djtasks publishes it only after
    # COMMIT, so the worker reads the committed text (and a rollback enqueues nothing).
    reindex_post.delay(instance.pk)
