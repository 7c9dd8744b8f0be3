import logging
from argparse import ArgumentParser
from contextlib import ExitStack
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

import djtasks
from djtasks.core.conf import get_settings
from djtasks.worker import autoscale, output, reload
from djtasks.worker.banner import banner
from djtasks.worker.naming import node_name
from djtasks.worker.pools import POOLS
from djtasks.worker.startup import StartupFailure
from djtasks.worker.supervisor import Worker


def quiet_django_task_lines(level: str) -> None:
    """Let -l quiet Django's per-task lines (django.tasks, INFO) too, unless LOGGING sets their level."""
    django_tasks = logging.getLogger("django.tasks")
    if (
        django_tasks.level == logging.NOTSET
        and django_tasks.getEffectiveLevel() < logging.getLevelNamesMapping()[level]
    ):
        django_tasks.setLevel(level)


class Command(BaseCommand):
    help = "Run a djtasks worker: a parent process supervising N children (processes, threads, or solo)."
    requires_system_checks = ["djtasks"]

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("-n", "--hostname", help="worker name, e.g. w1@%%h (default: WORKER_NAME, djtasks@%%h)")
        parser.add_argument("-c", "--concurrency", type=int, help="children (default: number of CPUs)")
        parser.add_argument("-P", "--pool", default="prefork", choices=POOLS, help="prefork (default), threads, solo")
        parser.add_argument("--autoscale", metavar="MAX,MIN", help="grow to MAX children while work waits, down to MIN")
        parser.add_argument("--autoscale-cooldown", type=float, default=30.0, help="idle seconds before shrinking")
        parser.add_argument("-Q", "--queues", default="", help="comma-separated queues to consume, in order")
        parser.add_argument("--max-tasks-per-child", type=int, help="replace a child after this many tasks")
        parser.add_argument(
            "--max-memory-per-child", type=int, help="replace a child after a task leaves it above this many KiB"
        )
        parser.add_argument("--soft-time-limit", type=float, help="seconds before SoftTimeLimitExceeded is raised")
        parser.add_argument("--time-limit", type=float, help="seconds before a task's child is killed")
        parser.add_argument("--shutdown-grace", type=float, help="seconds running tasks get on SIGTERM")
        events = parser.add_mutually_exclusive_group()
        events.add_argument("-E", "--events", action="store_true", default=None, help="write events (ENABLE_EVENTS)")
        events.add_argument(
            "--without-events", dest="events", action="store_false", default=None, help="write no events"
        )
        parser.add_argument("--reload", action="store_true", help="restart when the code changes (development)")
        parser.add_argument("-f", "--logfile", help="send output to this file (%%n, %%i and %%I expanded)")
        parser.add_argument("--pidfile", help="write the parent's pid to this file (%%n expanded)")
        parser.add_argument("-l", "--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR")

    def handle(self, *args: Any, **options: Any) -> None:
        level = str(options["loglevel"]).upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise CommandError(f"Unknown log level {options['loglevel']!r}.")
        node = node_name(options["hostname"] or get_settings().WORKER_NAME)
        if options["logfile"]:
            output.redirect(options["logfile"], node)
        logger = logging.getLogger("djtasks")
        logger.setLevel(level)
        quiet_django_task_lines(level)
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(process)d] %(message)s"))
            logger.addHandler(handler)
        try:
            scale = autoscale.parse(options["autoscale"]) if options["autoscale"] else None
            if options["reload"]:
                with output.pidfile(options["pidfile"], node):
                    code = reload.run(lambda: self.build(options, scale))
            else:
                # The pid file is written once the worker has started (options, database, Redis and
                # name accepted), so a pid file names a running worker (taskmulti start relies on it).
                output.refuse_taken(options["pidfile"], node)
                with ExitStack() as held:
                    worker = self.build(options, scale)
                    worker.on_started = lambda: held.enter_context(output.pidfile(options["pidfile"], node))
                    code = worker.run()
        except (ImproperlyConfigured, StartupFailure, output.PidfileTaken, ValueError) as exc:
            raise CommandError(str(exc)) from None
        raise SystemExit(code)

    def build(self, options: dict[str, Any], scale: tuple[int, int] | None) -> Worker:
        """The worker the options describe; the options are checked like the settings they override."""
        queues = [q.strip() for q in options["queues"].split(",") if q.strip()] or [get_settings().DEFAULT_QUEUE]
        worker = Worker(
            queues=queues,
            concurrency=options["concurrency"],
            max_tasks_per_child=options["max_tasks_per_child"],
            max_memory_per_child=options["max_memory_per_child"],
            soft_time_limit=options["soft_time_limit"],
            time_limit=options["time_limit"],
            shutdown_grace=options["shutdown_grace"],
            hostname=options["hostname"],
            pool=options["pool"],
            autoscale=scale,
            events=options["events"],
            autoscale_cooldown=options["autoscale_cooldown"],
        )
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
        return worker
