"""taskmulti's command line, read as Celery multi reads its own (celery/apps/multi.py).

    taskmulti start 3 -c 3 -Q:1-3 images,video -Q:4,5 data --pidfile=%n.pid --logfile=%n%I.log
    taskmulti start w1 w2 -c:w1 10 -Q:w2 emails -- --max-tasks-per-child 100

- One number N names the nodes djtasks1 .. djtasksN (--prefix changes "djtasks"); otherwise each
  word is a node name ("w1", or "w1@host"). Nodes are "name@host", host from -n/--hostname
  (default: this host).
- Options apply to every node; `-opt:SPEC value` only to some: SPEC is a node's name, its
  1-based index, a list (1,3 or w1,w2) or, with a node count, a range (1-3). A short option
  takes the next word as its value unless it starts with "-"; a long one takes `--opt=value`.
- After `--`, words are passed to every node as they are.
- Pid and log files default to %n.pid and %n%I.log (in the current folder); %n (the node's
  name), %h (its host), %d (its domain) and %p (name@host) are expanded here, %i and %I by the
  worker in each of its processes.
"""

from __future__ import annotations

import shlex
import socket
from collections import defaultdict
from dataclasses import dataclass, field

from djtasks.worker.naming import SEPARATOR, expand

PREFIX = "djtasks"
DEFAULTS = {"--pidfile": "%n.pid", "--logfile": "%n%I.log"}
ALIASES = {"-p": "--pidfile", "-f": "--logfile"}


class MultiError(ValueError):
    """A taskmulti command line that names no node, or a node that does not exist."""


@dataclass
class Parsed:
    """The words of a command line: positional values, options for all, options per namespace."""

    values: list[str] = field(default_factory=list)
    options: dict[str, str | None] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str | None]] = field(default_factory=lambda: defaultdict(dict))
    passthrough: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Node:
    name: str  # "w1@host"
    options: dict[str, str | None]
    passthrough: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return self.name.partition(SEPARATOR)[0]

    @property
    def host(self) -> str:
        return self.name.partition(SEPARATOR)[2]

    def expand(self, value: str) -> str:
        """Expand %n, %h, %d and %p for this node; keep %i and %I for the worker."""
        return expand(value, host=self.host, name=self.short, index=None)

    @property
    def pidfile(self) -> str:
        return self.expand(self.options["--pidfile"] or DEFAULTS["--pidfile"])

    @property
    def logfile(self) -> str:
        """The parent's log file (its %i and %I expanded for the parent process)."""
        template = self.options["--logfile"] or DEFAULTS["--logfile"]
        return expand(template, host=self.host, name=self.short, index=0)

    def argv(self) -> list[str]:
        """taskworker's arguments for this node."""
        words = ["-n", self.name]
        for option, value in self.options.items():
            if value is None:
                words.append(option)
            elif option.startswith("--"):
                words.append(f"{option}={self.expand(value)}")
            else:
                words += [option, self.expand(value)]
        return [*words, *self.passthrough]

    def shown(self, command: list[str]) -> str:
        return shlex.join([*command, *self.argv()])


def read(args: list[str]) -> Parsed:
    """Split the words as Celery's NamespacedOptionParser does."""
    parsed = Parsed()
    position = 0
    while position < len(args):
        word = args[position]
        if word == "--":
            parsed.passthrough = args[position + 1 :]
            break
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            _add(parsed, "--" + name, value if "=" in word else None)
        elif word.startswith("-") and len(word) > 1:
            value = None
            if position + 1 < len(args) and not args[position + 1].startswith("-"):
                position += 1
                value = args[position]
            _add(parsed, "-" + word[1:], value)
        else:
            parsed.values.append(word)
        position += 1
    return parsed


def _add(parsed: Parsed, name: str, value: str | None) -> None:
    name, colon, namespace = name.partition(":")
    name = ALIASES.get(name, name)
    (parsed.namespaces[namespace] if colon else parsed.options)[name] = value


def nodes(args: list[str], *, hostname: str | None = None) -> list[Node]:
    """The nodes a command line names, each with its options (a MultiError if it names none)."""
    parsed = read(args)
    options = dict(parsed.options)
    host = options.pop("--hostname", None) or options.pop("-n", None) or hostname or socket.gethostname()
    prefix = options.pop("--prefix", None) or ""
    names = parsed.values
    counted = len(names) == 1 and names[0].isdigit()
    if counted:
        names, prefix = [str(n) for n in range(1, int(names[0]) + 1)], prefix or PREFIX
    if not names:
        raise MultiError("name the nodes: a number (taskmulti start 3) or names (taskmulti start w1 w2)")
    per_node = _namespaces(parsed, names, counted)
    found = []
    for name in names:
        full = name if SEPARATOR in name else f"{prefix}{name}{SEPARATOR}{host}"
        full = expand(full, host=host, index=None)
        merged = {**DEFAULTS, **options, **per_node.get(name, {}), **per_node.get(full, {})}
        short = full.partition(SEPARATOR)[0]
        if short != name:
            merged.update(per_node.get(short, {}))
        found.append(Node(full, merged, tuple(parsed.passthrough)))
    return found


def _namespaces(parsed: Parsed, names: list[str], counted: bool) -> dict[str, dict[str, str | None]]:
    """Per-node options by node name: indexes (1-based), lists and ranges resolved."""
    resolved: dict[str, dict[str, str | None]] = defaultdict(dict)
    for spec, opts in parsed.namespaces.items():
        for part in spec.split(","):
            for target in _targets(part, names, counted):
                resolved[target].update(opts)
    return resolved


def _targets(part: str, names: list[str], counted: bool) -> list[str]:
    if counted and "-" in part and all(piece.isdigit() for piece in part.split("-", 1)):
        start, stop = (int(piece) for piece in part.split("-", 1))
        return [str(n) for n in range(start, stop + 1) if n <= len(names)]
    if part.isdigit():
        index = int(part)
        if index < 1:
            raise MultiError(f"node indexes start at 1, not {part}")
        return [names[index - 1]] if index <= len(names) else []
    return [part]
