import logging
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

import djtasks
from djtasks.core.conf import get_settings
from djtasks.worker.banner import banner
from djtasks.worker.supervisor import Worker


class Command(BaseCommand):
    help = "Run a djtasks worker: a parent process supervising N child processes."
    requires_system_checks = ["djtasks"]

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("-c", "--concurrency", type=int, help="child processes (default: number of CPUs)")
        parser.add_argument("-Q", "--queues", default="", help="comma-separated queues to consume, in order")
        parser.add_argument("--max-tasks-per-child", type=int, help="replace a child after this many tasks")
        parser.add_argument(
            "--max-memory-per-child", type=int, help="replace a child after a task leaves it above this many KiB"
        )
        parser.add_argument("--soft-time-limit", type=float, help="seconds before SoftTimeLimitExceeded is raised")
        parser.add_argument("--time-limit", type=float, help="seconds before a task's child is killed")
        parser.add_argument("--shutdown-grace", type=float, help="seconds running tasks get on SIGTERM")
        parser.add_argument("-l", "--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR")

    def handle(self, *args: Any, **options: Any) -> None:
        level = str(options["loglevel"]).upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise CommandError(f"Unknown log level {options['loglevel']!r}.")
        logger = logging.getLogger("djtasks")
        logger.setLevel(level)
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(process)d] %(message)s"))
            logger.addHandler(handler)
        queues = [q.strip() for q in options["queues"].split(",") if q.strip()] or [get_settings().DEFAULT_QUEUE]
        try:
            # The options are checked like the settings they override (worker/config.py).
            worker = Worker(
                queues=queues,
                concurrency=options["concurrency"],
                max_tasks_per_child=options["max_tasks_per_child"],
                max_memory_per_child=options["max_memory_per_child"],
                soft_time_limit=options["soft_time_limit"],
                time_limit=options["time_limit"],
                shutdown_grace=options["shutdown_grace"],
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if options["verbosity"] > 0:  # the banner, as Celery's worker prints one; -v 0 leaves it out
            self.stdout.write(
                banner(
                    worker_id=worker.worker_id,
                    config=worker.config,
                    queues=worker.queues,
                    concurrency=worker.concurrency,
                    db=worker.db,
                    version=djtasks.__version__,
                )
            )
            self.stdout.flush()
        raise SystemExit(worker.run())
