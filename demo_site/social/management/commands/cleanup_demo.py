"""manage.py cleanup_demo: the demo's housekeeping, run here or enqueued for a worker."""

from django.core.management.base import BaseCommand
from django.db import transaction

from demo_site.social.cleanup import cleanup
from demo_site.social.tasks import cleanup_demo


class Command(BaseCommand):
    help = "Trim long timelines, delete old mail files and unused avatar files (what cron would run)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--enqueue", action="store_true", help="Enqueue the cleanup_demo task for a worker instead of running here."
        )

    def handle(self, *args, enqueue=False, **options):
        if enqueue:
            with transaction.atomic():
                result = cleanup_demo.delay()
            self.stdout.write(f"Enqueued cleanup_demo as task {result.id}")
            return
        removed = cleanup()
        self.stdout.write(", ".join(f"{what.replace('_', ' ')} removed: {n}" for what, n in removed.items()))
