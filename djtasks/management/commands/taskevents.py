import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from djtasks.core.exceptions import BrokerUnavailable
from djtasks.ops import events
from djtasks.ops.top import stream as stream_of
from djtasks.ops.top.board import Filters, parse_state
from djtasks.ops.top.feed import start_id
from djtasks.transport.broker import get_broker

try:
    from djtasks.ops.top import terminal as top
except ModuleNotFoundError as exc:  # Textual is needed by the screen only; the line dump works without it
    if not (exc.name or "").startswith(("textual", "rich")):
        raise
    top = None  # type: ignore[assignment]


class Command(BaseCommand):
    help = "Follow djtasks task and worker events live (one line per event, or JSON lines), or --top: a live screen."
    top_by_default = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print each event as a JSON object")
        parser.add_argument("--history", action="store_true", help="start with the events the stream holds")
        parser.add_argument("--no-follow", action="store_true", help="print what the stream holds, then exit")
        parser.add_argument("--task-id", help="only events of this task")
        if not self.top_by_default:
            parser.add_argument("--top", action="store_true", help="a live full-screen monitor (tasktop)")
        parser.add_argument("--state", default="", help="only tasks in this state (RECEIVED, STARTED, SUCCESS, ...)")
        parser.add_argument("--queue", default="", help="only tasks of this queue")
        parser.add_argument("--name", default="", help="only tasks whose name contains this")
        parser.add_argument(
            "--since", type=float, help="start with the events of the last N seconds (screen default: 300)"
        )
        parser.add_argument("--refresh", type=float, default=1.0, help="screen refresh period in seconds (1)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            filters = Filters(parse_state(options["state"]), options["queue"].strip(), options["name"].strip())
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        screen = self.top_by_default or options["top"]
        if screen and not (options["json"] or options["no_follow"]):
            # The screen reads keys from stdin and draws on stderr (Textual's choice); lines go to stdout.
            streams = {"stdin": sys.stdin, "stdout": sys.stdout, "stderr": sys.stderr}
            missing = [name for name, stream in streams.items() if not (stream and stream.isatty())]
            if not missing:
                self.screen(filters, options)
                return
            self.stderr.write(
                f"{', '.join(missing)} not a terminal: printing events line by line instead of the screen"
            )
        self.lines(filters, options)

    def screen(self, filters: Filters, options: dict[str, Any]) -> None:
        if top is None:
            raise CommandError("the live screen needs Textual: pip install 'textual>=8.2'")
        if not 0.1 <= options["refresh"] <= 60:
            raise CommandError("--refresh must be between 0.1 and 60 seconds")
        since = None if options["history"] else (300.0 if options["since"] is None else options["since"])
        status = top.run(filters=filters, since=since, refresh=options["refresh"])
        if status:
            raise CommandError(f"tasktop ended with status {status}", returncode=status)

    def lines(self, filters: Filters, options: dict[str, Any]) -> None:
        broker = get_broker()
        history = options["history"] or options["no_follow"]
        try:
            if options["since"] is not None:
                after = start_id(broker.last_event_id(), options["since"])
            else:
                after = "0" if history else "$"
            stream = stream_of.held(broker, after) if options["no_follow"] else stream_of.follow(broker, after)
            for _, event in stream:
                if options["task_id"] and event.get("id") != options["task_id"]:
                    continue
                if not filters.matches_event(event):
                    continue
                self.stdout.write(json.dumps(event, sort_keys=True) if options["json"] else events.line(event))
                self.stdout.flush()
        except BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            pass
