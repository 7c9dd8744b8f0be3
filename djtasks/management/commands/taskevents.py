import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.ops import events
from djtasks.transport.broker import get_broker


class Command(BaseCommand):
    help = "Follow djtasks task and worker events live (one line per event, or JSON lines)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print each event as a JSON object")
        parser.add_argument("--history", action="store_true", help="print the events the stream holds first")
        parser.add_argument("--no-follow", action="store_true", help="print what the stream holds, then exit")
        parser.add_argument("--task-id", help="only events of this task")

    def handle(self, *args: Any, **options: Any) -> None:
        broker = get_broker()
        history = options["history"] or options["no_follow"]
        try:
            if options["no_follow"]:
                stream = iter(events.read(broker, "0", count=1_000_000))
            else:
                stream = events.follow(broker, "0" if history else "$")
            for _, event in stream:
                if options["task_id"] and event.get("id") != options["task_id"]:
                    continue
                self.stdout.write(json.dumps(event, sort_keys=True) if options["json"] else events.line(event))
                self.stdout.flush()
        except BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            pass
