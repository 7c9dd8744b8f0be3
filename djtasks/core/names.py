"""What a queue name, a worker name and the key prefix may be: the settings, the options and control agree."""

from __future__ import annotations

MAX_QUEUE_NAME = 100  # TaskRecord.queue is a CharField(max_length=100)
MAX_WORKER_NAME = 200
MAX_TASK_NAME = 255  # TaskRecord.task_name is a CharField(max_length=255)


def queue_name_error(name: object) -> str | None:
    """Say why this cannot be a queue name (None if it can): 1-100 printable characters, no comma, unpadded."""
    if not isinstance(name, str):
        return f"a queue name is a string, not {type(name).__name__}"
    if not name:
        return "a queue name cannot be empty"
    if len(name) > MAX_QUEUE_NAME:
        return f"a queue name has at most {MAX_QUEUE_NAME} characters, not {len(name)}"
    if not name.isprintable() or "," in name or name != name.strip():
        # -Q and --destination split on commas and strip spaces; control characters forge log lines.
        return f"a queue name has no control characters, commas or surrounding spaces: {name!r}"
    return None


def task_name_error(name: object) -> str | None:
    """Say why this cannot be a task's registered name (None if it can): 1-255 printable characters."""
    if not isinstance(name, str) or not name or len(name) > MAX_TASK_NAME:
        return f"a task name is a string of 1 to {MAX_TASK_NAME} characters"
    if not name.isprintable():
        return f"a task name has no control characters: {name!r}"
    return None


def worker_name_error(name: object) -> str | None:
    """Say why this cannot be a worker name (None if it can): 1-200 printable characters, no space or comma."""
    if not isinstance(name, str) or not name or len(name) > MAX_WORKER_NAME:
        return f"a worker name has 1 to {MAX_WORKER_NAME} characters"
    if not name.isprintable() or "," in name or any(c.isspace() for c in name):
        return f"a worker name has no spaces, commas or control characters: {name!r}"
    return None


def prefix_ok(prefix: str) -> bool:
    """Say whether a key prefix can be a Redis Cluster hash tag: 1-100 printable characters, no space, brace, colon."""
    return 0 < len(prefix) <= 100 and prefix.isprintable() and not any(c.isspace() or c in "{}:" for c in prefix)
