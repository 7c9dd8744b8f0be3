"""manage.py load_demo_data: a few users who follow each other and their posts; run it as often as you like."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from demo_site.social.models import Follow, Post, Profile
from demo_site.social.tasks import fan_out_post

PASSWORD = "demo-password"
USERS = ["alice", "bob", "carol", "dave", "erin"]
# Who follows whom: everyone follows alice; the rest is a small ring.
FOLLOWS = [
    ("bob", "alice"),
    ("carol", "alice"),
    ("dave", "alice"),
    ("erin", "alice"),
    ("alice", "bob"),
    ("bob", "carol"),
    ("carol", "dave"),
    ("dave", "erin"),
    ("erin", "bob"),
]
POSTS = [
    ("alice", "Hello! This demo runs every slow thing in a background task."),
    ("bob", "Posting fans out to each follower's timeline in a task, 500 followers per chunk."),
    ("carol", "Follow someone and they get an email: look in var/mail/."),
    ("dave", "Upload an avatar on your profile page: a task makes the thumbnails with Pillow."),
    ("erin", "Search finds posts through an index that a task keeps up to date."),
    ("alice", "Reports show a live progress bar while the task runs."),
    ("bob", "Every task is a row in the database: see the admin, under Tasks."),
]


class Command(BaseCommand):
    help = "Create the demo users (password: demo-password), their follows and posts, unless they exist."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(username=USERS[0]).exists():
            self.stdout.write(f"Demo data already loaded (users: {', '.join(USERS)}).")
            return
        with transaction.atomic():
            users = {}
            for name in USERS:
                users[name] = User.objects.create_user(name, f"{name}@example.com", PASSWORD)
                Profile.objects.create(user=users[name])
            Follow.objects.bulk_create(Follow(follower=users[a], followee=users[b]) for a, b in FOLLOWS)
            for author, body in POSTS:
                post = Post.objects.create(author=users[author], body=body)
                # The same tasks as the web site: the rows wait in the database until a worker
                # runs them (if Redis is not running yet, the workers' outbox sweep publishes them).
                fan_out_post.delay(post.pk)
        self.stdout.write(
            f"Loaded demo data: users {', '.join(USERS)} (password {PASSWORD}), "
            f"{len(FOLLOWS)} follows, {len(POSTS)} posts; their tasks run when the workers start."
        )
