"""REDIS_URL's forms and REDIS_OPTIONS: what they may be, read without talking to Redis.

- ``redis://``, ``rediss://`` (TLS) or ``unix://``: one server, or any node of a Redis Cluster
  (the transport asks the node whether it is one);
- Celery's Sentinel form, ``sentinel://h1:26379;sentinel://h2:26379/0``: the sentinels to ask for
  the primary named by ``REDIS_OPTIONS["master_name"]``; credentials in the URL are the primary's,
  a database number may end any part (they must agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

SCHEMES = ("redis://", "rediss://", "unix://", "sentinel://")
# REDIS_OPTIONS keys passed to redis-py's connections (the primary's, a cluster node's, a server's).
CONNECTION_OPTIONS: dict[str, tuple[type, ...]] = {
    "username": (str,),
    "password": (str,),
    "client_name": (str,),
    "health_check_interval": (int, float),
    "socket_keepalive": (bool,),
    "ssl_cert_reqs": (str,),
    "ssl_ca_certs": (str,),
    "ssl_certfile": (str,),
    "ssl_keyfile": (str,),
    "ssl_check_hostname": (bool,),
}
# Keys of a sentinel:// URL only (Celery's broker_transport_options names).
SENTINEL_OPTIONS: dict[str, tuple[type, ...]] = {
    "master_name": (str,),
    "sentinel_kwargs": (dict,),
    "min_other_sentinels": (int,),
}
# What sentinel_kwargs may hold: the options of the connections to the sentinels themselves.
SENTINEL_KWARGS: dict[str, tuple[type, ...]] = {
    **CONNECTION_OPTIONS,
    "socket_timeout": (int, float),
    "socket_connect_timeout": (int, float),
    "ssl": (bool,),
}


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """The sentinels of a sentinel:// URL, the database to select and the primary's credentials."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def parse_sentinel(url: str) -> SentinelAddress:
    """Read a sentinel:// URL; raise ValueError saying what is wrong with it."""
    sentinels, dbs = [], set()
    username = password = None
    for part in url.split(";"):
        part = part.strip()
        if not part.startswith("sentinel://"):
            raise ValueError(f"part {part!r} does not start with sentinel://")
        found = urlsplit(part)
        try:
            port = found.port
        except ValueError:
            raise ValueError(f"part {part!r} has a port that is not a number from 1 to 65535") from None
        if not found.hostname or not port:
            raise ValueError(f"part {part!r} does not name a host and a port (sentinel://host:26379)")
        path = found.path.strip("/")
        if path:
            if not path.isdigit() or int(path) > 10**6:
                raise ValueError(f"part {part!r} names a database that is not a number")
            dbs.add(int(path))
        username = unquote(found.username) if found.username else username
        password = unquote(found.password) if found.password else password
        sentinels.append((found.hostname, port))
    if len(dbs) > 1:
        raise ValueError(f"its parts name different databases ({', '.join(map(str, sorted(dbs)))})")
    return SentinelAddress(tuple(sentinels), dbs.pop() if dbs else 0, username, password)


def url_error(url: str) -> str | None:
    """Say why REDIS_URL cannot be used (None if it can)."""
    if not url.startswith(SCHEMES):
        return "is not a Redis URL"
    if is_sentinel(url):
        try:
            parse_sentinel(url)
        except ValueError as exc:
            return f"is not a sentinel:// URL: {exc}"
    return None


def _typed(options: dict[str, Any], known: dict[str, tuple[type, ...]], where: str) -> str | None:
    for key, value in options.items():
        if key not in known:
            return f"has an unknown key {key!r}{where} (known: {', '.join(sorted(known))})"
        types = known[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            return f"[{key!r}]{where} must be of type {names}, not {type(value).__name__}"
    return None


def options_error(options: dict[str, Any]) -> str | None:
    """Say what is wrong with REDIS_OPTIONS on its own (None if nothing)."""
    problem = _typed(options, {**CONNECTION_OPTIONS, **SENTINEL_OPTIONS}, "")
    if problem:
        return problem
    name = options.get("master_name")
    if name is not None and not (0 < len(name) <= 200 and name.isprintable()):
        return "['master_name'] must be 1 to 200 printable characters"
    if not 0 <= options.get("min_other_sentinels", 0) <= 100:
        return "['min_other_sentinels'] must be from 0 to 100"
    return _typed(options.get("sentinel_kwargs", {}), SENTINEL_KWARGS, " in 'sentinel_kwargs'")


def options_fit_url(url: str, options: dict[str, Any]) -> bool:
    """A sentinel:// URL needs a master_name; the Sentinel keys mean nothing to other URLs."""
    if is_sentinel(url):
        return bool(options.get("master_name"))
    return not set(options) & set(SENTINEL_OPTIONS)


def masked(url: str) -> str:
    """Return the URL with any password replaced by ****, for messages."""
    parts = []
    for part in url.split(";"):
        found = urlsplit(part.strip()) if "://" in part else None
        if found is not None and found.password:
            netloc = found.netloc.replace(":" + found.password + "@", ":****@", 1)
            part = found._replace(netloc=netloc).geturl()
        parts.append(part)
    return ";".join(parts)
