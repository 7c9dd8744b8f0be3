"""Worker names as Celery writes them: `-n w1@%h`, with %h, %n, %d, %i, %I and %p expanded.

A name is "name@host". Expansions (Celery's, in a worker):
  %h  this host's full name (socket.gethostname(), domain included)
  %n  the host name without its domain
  %d  the domain only
  %i  the pool process index: 0 in the worker's parent, 1..N in its children
  %I  the same with a separator: "" in the parent, "-1".."-N" in the children
  %p  the full node name (only where a name is known: log and pid files)
  %%  a literal %
A name without "@" is a host: `-n %h` and `-n web1` become "djtasks@<host>" and "djtasks@web1",
as Celery makes "celery@..." of them. The default is the WORKER_NAME setting, "djtasks@%h".
"""

from __future__ import annotations

import re
import socket

from djtasks.core.names import worker_name_error

DEFAULT_NAME = "djtasks"
SEPARATOR = "@"
_PATTERN = re.compile(r"%(.)")


def expand(template: str, *, host: str | None = None, name: str | None = None, index: int | None = 0) -> str:
    """Expand the % codes of a name, log file or pid file template; unknown codes are kept as written.

    With index None, %i and %I are kept for the worker to expand in each of its processes.
    """
    host = host or socket.gethostname()
    short, _, domain = host.partition(".")
    keys = {
        "h": host,
        "n": name if name is not None else short,
        "d": domain,
        "%": "%",
    }
    if index is not None:
        keys["i"], keys["I"] = str(index), f"-{index}" if index else ""
    if name is not None:
        keys["p"] = f"{name}{SEPARATOR}{host}"
    return _PATTERN.sub(lambda match: keys.get(match.group(1), match.group(0)), template)


def node_name(template: str) -> str:
    """Return the worker name a -n value (or WORKER_NAME) gives on this host: "name@host", expanded."""
    name, at, host = template.partition(SEPARATOR)
    if not at:
        name, host = DEFAULT_NAME, template
    return f"{expand(name) or DEFAULT_NAME}{SEPARATOR}{expand(host or '%h')}"


def split(node: str) -> tuple[str, str]:
    """Split "name@host" into its name and host (the whole as host when there is no "@")."""
    name, at, host = node.partition(SEPARATOR)
    return (name, host) if at else ("", node)


def name_error(node: str) -> str | None:
    """Say why an expanded name cannot name a worker (None if it can)."""
    return worker_name_error(node)
