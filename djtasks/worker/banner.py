"""The banner `taskworker` prints when it starts, as Celery's worker does: where it connects, what it runs."""

from __future__ import annotations

import platform
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit

import django
from django.db import connections

from djtasks.core import registry
from djtasks.core.conf import Settings

SECRET_PARAMETERS = {"password", "pass", "passwd", "token", "secret"}


def hide_password(url: str) -> str:
    """The URL with its password (in the user part or the query) shown as **, as Celery shows its broker."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = netloc.rpartition("@")[2]
            netloc = f"{parts.username or ''}:**@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "**" if k.lower() in SECRET_PARAMETERS else v) for k, v in pairs], safe="*")
        shown = f"{parts.scheme}://{netloc}{parts.path}"  # urlunsplit would drop unix:// to unix:
        return shown + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    except ValueError:  # not a URL urllib can read: show its scheme only
        return url.partition(":")[0] + "://**"


def database(alias: str) -> str:
    """Describe the database the rows go to, without its password."""
    settings = connections[alias].settings_dict
    vendor = connections[alias].vendor
    user, host, port = settings.get("USER") or "", settings.get("HOST") or "", settings.get("PORT") or ""
    where = f"{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
    return f"{alias}: {vendor} {where + '/' if where else ''}{settings.get('NAME')}"


def banner(*, worker_id: str, config: Settings, queues: list[str], concurrency: int, db: str, version: str) -> str:
    """Compose the banner."""
    limits = [f"soft {config.SOFT_TIME_LIMIT or 'none'}", f"hard {config.TIME_LIMIT or 'none'}"]
    lines = [
        f"djtasks {version} worker {worker_id} (Django {django.get_version()}, Python {platform.python_version()}, "
        f"{sys.platform})",
        "",
        "[config]",
        f".> transport:   {hide_password(config.REDIS_URL)} (prefix {config.PREFIX})",
        f".> database:    {database(db)} (rows: states, results, errors)",
        f".> concurrency: {concurrency} (prefork: forked child processes; pool_grow up to {config.MAX_CONCURRENCY})",
        f".> task events: {'ON' if config.ENABLE_EVENTS else 'OFF'}",
        f".> time limits: {', '.join(limits)}",
        "",
        "[queues]",
        *(f".> {queue}" for queue in queues),
        "",
        "[tasks]",
        *(f"  . {name}" for name in registry.names()),
        "",
    ]
    return "\n".join(lines)
