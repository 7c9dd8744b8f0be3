import json
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from djtasks.core.exceptions import BrokerUnavailable, NotRegistered
from djtasks.ops import control

USAGE = """commands:
  ping                              ask workers to answer
  status                            workers online, from their heartbeats
  inspect active|scheduled|reserved|registered|stats|queues
  revoke ID [ID...] [--terminate]   revoke tasks (the worker holding one is told)
  rate_limit TASK RATE              e.g. 10/m; "none" returns to the declared rate
  time_limit TASK SOFT HARD         seconds; 0 for no limit
  add_consumer QUEUE / cancel_consumer QUEUE
  pool_grow N / pool_shrink N       add or warm-stop N child processes
  enable_events / disable_events    switch the workers' task events on or off (until they stop)
  shutdown                          warm shutdown"""
# What each command (but status and revoke) sends, through djtasks.control.
SENDERS: dict[str, Callable[..., list[control.Reply]]] = {
    "ping": control.ping,
    "inspect": control.inspect,
    "rate_limit": control.rate_limit,
    "time_limit": control.time_limit,
    "add_consumer": control.add_consumer,
    "cancel_consumer": control.cancel_consumer,
    "pool_grow": control.pool_grow,
    "pool_shrink": control.pool_shrink,
    "shutdown": control.shutdown,
    "enable_events": control.enable_events,
    "disable_events": control.disable_events,
}
ARITY = {
    "ping": 0,
    "status": 0,
    "inspect": 1,
    "rate_limit": 2,
    "time_limit": 3,
    "add_consumer": 1,
    "cancel_consumer": 1,
    "pool_grow": 1,
    "pool_shrink": 1,
    "shutdown": 0,
    "enable_events": 0,
    "disable_events": 0,
}


class Command(BaseCommand):
    help = "Control and inspect running djtasks workers."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = USAGE
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("command", choices=[*ARITY, "revoke"], help="what to do (see below)")
        parser.add_argument("values", nargs="*", metavar="ARG", help="the command's arguments")
        parser.add_argument("-d", "--destination", default="", help="comma-separated worker names (default: all)")
        parser.add_argument(
            "-t",
            "--timeout",
            type=float,
            default=control.DEFAULT_TIMEOUT,
            help="seconds to wait for replies (default %(default)s)",
        )
        parser.add_argument("--terminate", action="store_true", help="revoke: also kill the running task")
        parser.add_argument("--json", action="store_true", help="print the replies as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        command, values = options["command"], options["values"]
        if command == "revoke" and not values:
            raise CommandError("revoke needs at least one task id.")
        if command != "revoke" and len(values) != ARITY[command]:
            raise CommandError(f"{command} takes {ARITY[command]} argument(s), got {len(values)}.\n{USAGE}")
        where = {
            "destination": [d.strip() for d in options["destination"].split(",") if d.strip()] or None,
            "timeout": options["timeout"],
        }
        try:
            if command == "status":
                rows = control.status()
                self._print_status(rows, options["json"])
                return
            replies = self._run(command, values, where, options["terminate"])
        except (BrokerUnavailable, NotRegistered, ValueError) as exc:
            raise CommandError(f"{command}: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in replies], indent=2, default=str))
        else:
            self._table(
                ["worker" if command != "revoke" else "task", "ok", "reply"],
                [[r.worker, "ok" if r.ok else "ERROR", r.error or summary(command, values, r.data)] for r in replies],
            )
        if not replies:
            raise CommandError("no worker is online (no live heartbeat); nothing was sent.")
        failed = [r for r in replies if not r.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(replies)} did not succeed.")

    def _run(self, command: str, values: list[str], where: dict[str, Any], terminate: bool) -> list[control.Reply]:
        if command == "revoke":
            return control.revoke(values, terminate=terminate)
        if command in {"pool_grow", "pool_shrink"}:
            try:
                count = int(values[0])
            except ValueError:
                raise CommandError(f"{command} needs a whole number, not {values[0]!r}.") from None
            return SENDERS[command](count, **where)
        return SENDERS[command](*values, **where)

    def _print_status(self, rows: list[dict[str, Any]], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self._table(
            ["worker", "pid", "pool", "queues", "concurrency", "processed", "held", "up", "last heartbeat"],
            [
                [
                    r["worker"],
                    str(r["pid"]),
                    str(r.get("pool") or "?") + ("" if r.get("events") is not False else " -events"),
                    ",".join(r["queues"] or []),
                    str(r["concurrency"]),
                    str(r["processed"]),
                    str(r["held"]),
                    _seconds(r["uptime_s"]),
                    _seconds(r["heartbeat_age_s"]) + " ago",
                ]
                for r in rows
            ],
        )
        self.stdout.write(f"{len(rows)} worker(s) online")

    def _table(self, header: list[str], rows: list[list[str]]) -> None:
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
        widths[-1] = 0  # the last column is not padded
        for row in [header, *rows]:
            self.stdout.write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def _seconds(value: float | None) -> str:
    """Show an age measured on Redis' clock (control.status), never by comparing two hosts' clocks."""
    return "?" if value is None else f"{value:.1f}s"


def summary(command: str, values: list[str], data: Any) -> str:
    """Say in one line what a worker replied."""
    what = values[0] if command == "inspect" else ""
    if what in {"active", "reserved", "scheduled"}:
        if not data:
            return f"no {what} tasks"
        parts = []
        for task in data:
            text = f"{task.get('task_name', '?')}[{task['id']}]"
            if "running_s" in task:
                text += f" {task['running_s']:.1f}s child={task['child']}"
            if "eta" in task:
                text += f" eta={task['eta']}"
            parts.append(text)
        return f"{len(data)}: " + ", ".join(parts)
    if what == "registered":
        return f"{len(data)}: " + ", ".join(data)
    if what == "queues":
        return ", ".join(
            f"{q['name']} (ready={q['ready']} scheduled={q['scheduled']} reserved={q['reserved']})" for q in data
        )
    if what == "stats":
        pool = " ".join(f"{c['child']}:{c['pid']}/{c['processed']}" for c in data["pool"])
        return (
            f"pid={data['pid']} up={data['uptime_s']}s concurrency={data['concurrency']} "
            f"processed={data['processed']} queues={','.join(data['queues'])} "
            f"cpu={data['rusage']['utime_s'] + data['rusage']['stime_s']:.2f}s pool(child:pid/processed)=[{pool}]"
        )
    if command == "time_limit":
        return f"{data['task']}: soft={data['soft']} hard={data['hard']} ({data['note']})"
    if command == "rate_limit":
        return f"{data['task']}: rate {data['rate']}"
    return str(data)
