import argparse
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from djtasks.worker.cluster import Cluster
from djtasks.worker.multi import MultiError, nodes

ACTIONS = ("start", "stop", "stopwait", "restart", "kill", "show", "names")
USAGE = """Celery multi's syntax:
  taskmulti start 3 -c 3 -Q:1-3 images,video -Q:4,5 data     nodes djtasks1..3@<host>
  taskmulti start w1 w2 -c:w1 10 -Q:w2 emails                 named nodes w1@<host>, w2@<host>
  taskmulti stopwait w1 w2                                    warm stop, wait until they are gone
  --pidfile=%n.pid --logfile=%n%I.log (the defaults), --prefix=NAME, -n HOST; after -- words go to every node
actions: start, stop (SIGTERM, no wait), stopwait, restart, kill (SIGKILL), show (the commands), names"""


class Command(BaseCommand):
    help = "Start, stop and show several named djtasks workers at once (Celery's `celery multi`)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = USAGE
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("words", nargs=argparse.REMAINDER, help="nodes and their options (see below)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            found = nodes(options["words"])
        except MultiError as exc:
            raise CommandError(f"{exc}\n{USAGE}") from None
        cluster = Cluster(found, worker_command(), self.stdout.write, dict(os.environ))
        action = options["action"]
        if action == "names":
            self.stdout.write("\n".join(node.name for node in found))
            return
        code = {
            "start": cluster.start,
            "stop": lambda: cluster.stop(wait=False),
            "stopwait": lambda: cluster.stop(wait=True),
            "restart": cluster.restart,
            "kill": cluster.kill,
            "show": cluster.show,
        }[action]()
        if code:
            raise CommandError(f"{action}: some nodes did not {action}")


def worker_command() -> list[str]:
    """How to run taskworker the way taskmulti itself was run (manage.py, django-admin, python -m django)."""
    program = os.path.abspath(sys.argv[0])
    if os.path.isfile(program):
        return [sys.executable, program, "taskworker"]
    return [sys.executable, "-m", "django", "taskworker"]
