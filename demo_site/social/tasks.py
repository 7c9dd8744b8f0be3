"""Tasks of the demo app; djtasks finds them because they live in tasks.py."""

from djtasks import task

from .models import Post


@task
def add(x, y):
    """Add two numbers (the hello-world task)."""
    return x + y


@task
def count_words(post_id):
    """Return the number of words in a post."""
    body = Post.objects.values_list("body", flat=True).get(pk=post_id)
    return len(body.split())
