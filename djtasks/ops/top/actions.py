"""What the monitor's keys do, through djtasks.control; each returns the sentence the screen shows.

They never raise: a refused rate, a task this process does not know, Redis or the database
being away all come back as a sentence, and the monitor goes on.
"""

from __future__ import annotations

from django.db import DatabaseError, close_old_connections

from djtasks.core.exceptions import DjtasksError, NotRegistered
from djtasks.ops import control
from djtasks.ops.top.board import printable, reason, task_id_of


def revoke(task_id: str, *, terminate: bool) -> str:
    """Revoke a task (durably, in the database), and terminate it if it runs and terminate is set."""
    shown = printable(task_id, 40)
    if task_id_of(task_id) is None:
        return f"{shown} cannot be a task id"
    try:
        close_old_connections()
        [reply] = control.revoke([task_id], terminate=terminate)
    except (DjtasksError, DatabaseError) as exc:
        return f"revoke of {shown} failed: {reason(exc, 200)}"
    return f"{printable(task_id, 8)}… {printable(reply.data)}"


def rate_limit(task_name: str, rate: str) -> str:
    """Set a task's rate limit for every worker ("" or "none": back to the declared rate)."""
    name, wanted = printable(task_name, 80), rate.strip()
    try:
        replies = control.rate_limit(task_name, wanted)
    except NotRegistered:
        return f"rate limit not changed: {name} is not a task registered in this project"
    except ValueError as exc:
        return f"rate limit not changed: {reason(exc, 200)}"
    except DjtasksError as exc:
        return f"rate limit of {name} not changed: {reason(exc, 200)}"
    shown = "the declared rate" if wanted.lower() in {"", "none"} else wanted
    confirmed = [reply for reply in replies if reply.ok]
    text = f"{len(confirmed)}/{len(replies)} workers confirmed rate limit {shown} for {name}"
    refused = [reply for reply in replies if not reply.ok]
    if refused:
        text += f" ({printable(refused[0].error, 120)})"
    return text
