"""Per-call execution options (what apply_async accepts), as one frozen object, and the table of Celery's.

CELERY_OPTIONS names every option Celery 5.7 documents for apply_async (and the kombu publish
keywords it passes on) with what djtasks does with it, or why it refuses it: nothing is ignored
in silence. Every option is checked here, and a value that cannot be stored as given raises
InvalidCall naming it (a TypeError and a ValueError, as the errors it replaces).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from djtasks.core.callvalues import (
    CELERY_PRIORITY_MAX,
    ID_LENGTH,
    MAX_RETRIES_COUNT,
    QUEUE_LENGTH,
    aware,
    check_name,
    expiry,
    flag,
    from_celery_priority,
    later,
    limit,
    seconds,
    signatures,
)
from djtasks.core.exceptions import InvalidCall
from djtasks.core.values import Unstorable, plain

__all__ = [
    "CELERY_OPTIONS",
    "CELERY_PRIORITY_MAX",
    "ID_LENGTH",
    "NO_OPTIONS",
    "QUEUE_LENGTH",
    "ExecutionOptions",
    "Option",
    "PublishRetry",
    "aware",
    "check_name",
    "from_celery_priority",
    "seconds",
]

HONOURED, PARTLY, REFUSED = "honoured", "partly", "refused"


@dataclass(frozen=True, slots=True)
class Option:
    """What djtasks does with one of Celery's apply_async options (support: honoured, partly or refused).

    `accepts` are the values that ask for nothing djtasks lacks (they are taken and change nothing);
    any other value of a partly supported or refused option raises InvalidCall with `meaning`.
    """

    support: str
    meaning: str
    accepts: tuple[Any, ...] = ()


_SWEEP = "the outbox sweep publishes whatever a publish missed"
CELERY_OPTIONS: dict[str, Option] = {
    "args": Option(HONOURED, "positional arguments, stored as JSON on the row"),
    "kwargs": Option(HONOURED, "keyword arguments, stored as JSON on the row"),
    "task_id": Option(HONOURED, "the row's id (at most 255 characters, no control characters)"),
    "countdown": Option(HONOURED, "seconds from now before the task may start"),
    "eta": Option(HONOURED, "the earliest time the task may start (naive: the project's TIME_ZONE)"),
    "expires": Option(HONOURED, "seconds or a datetime; picked up later, the task is REVOKED without running"),
    "queue": Option(HONOURED, "the queue's name; a name is enough, no queue needs declaring"),
    "priority": Option(HONOURED, "Django's -100..100, higher first; Celery's 0..9 is celery_priority"),
    "link": Option(HONOURED, "signatures run with the result once the task succeeds"),
    "link_error": Option(HONOURED, "signatures run with the task id once the task fails"),
    "headers": Option(HONOURED, "JSON stored on the row, read back as self.request.headers"),
    "ignore_result": Option(HONOURED, "keep the row and its state, store no return value"),
    "shadow": Option(HONOURED, "the name shown in logs, events and the admin instead of the task's"),
    "time_limit": Option(HONOURED, "this call's hard time limit in seconds, stored on the row"),
    "soft_time_limit": Option(HONOURED, "this call's soft time limit in seconds, stored on the row"),
    "add_to_parent": Option(HONOURED, "False: a call made inside a task is not listed in its AsyncResult.children"),
    "retry": Option(
        HONOURED,
        "True: the after-commit publish is tried again on a connection error, as retry_policy says, before "
        f"{_SWEEP}; False (djtasks' default): one attempt, and the sweep",
    ),
    "retry_policy": Option(
        HONOURED, "max_retries, interval_start, interval_step, interval_max of the publish retry (with retry=True)"
    ),
    "routing_key": Option(
        PARTLY,
        "djtasks routes directly: a routing key names the queue, so it must agree with queue= if both are given",
    ),
    "serializer": Option(PARTLY, "djtasks carries JSON only: arguments and results are JSON on the row", ("json",)),
    "exchange": Option(
        REFUSED, "djtasks has no exchanges: a task goes to the queue queue= (or routing_key=) names", (None, "")
    ),
    "compression": Option(
        REFUSED,
        "djtasks sends only the task id through Redis and stores the arguments as JSON in the database "
        "(PostgreSQL compresses large values itself): there is no message body to compress",
    ),
    "connection": Option(REFUSED, f"djtasks publishes after the commit on its own connection, and {_SWEEP}"),
    "producer": Option(REFUSED, f"djtasks publishes after the commit on its own connection, and {_SWEEP}"),
    "publisher": Option(REFUSED, f"djtasks publishes after the commit on its own connection, and {_SWEEP}"),
    # kombu.Producer.publish keywords, which Celery's apply_async passes on.
    "mandatory": Option(REFUSED, "an AMQP flag: a djtasks queue is a name, it always exists", (False,)),
    "immediate": Option(REFUSED, "an AMQP flag: a djtasks message waits until a worker takes it", (False,)),
    "delivery_mode": Option(REFUSED, "every call is a row in the database: always persistent"),
    "content_type": Option(REFUSED, "djtasks carries JSON only", ("application/json",)),
    "content_encoding": Option(REFUSED, "djtasks carries JSON only, in UTF-8", ("utf-8",)),
    "declare": Option(REFUSED, "djtasks has no entities to declare: a queue is a name", ((), [])),
    "expiration": Option(REFUSED, "a message TTL: use expires=, which revokes the row"),
    "timeout": Option(REFUSED, "the publish follows the commit: see retry and retry_policy"),
    "confirm_timeout": Option(REFUSED, "the publish follows the commit: see retry and retry_policy"),
    "reply_to": Option(REFUSED, "results are read from the row, not from a reply queue"),
    "stamped_headers": Option(REFUSED, "canvas stamping is not supported: pass headers="),
    "stamps": Option(REFUSED, "canvas stamping is not supported: pass headers="),
}
# djtasks' own options, and those the canvas sets (where a call sits in a workflow).
OWN_OPTIONS = ("celery_priority", "parent_id", "root_id", "group_id", "chain", "chord", "retries")
RETRY_POLICY_KEYS = ("max_retries", "interval_start", "interval_step", "interval_max", "retry_errors")


@dataclass(frozen=True, slots=True)
class PublishRetry:
    """How often the after-commit publish is tried again on a connection error (Celery's retry_policy)."""

    max_retries: int = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 0.2

    def delays(self) -> list[float]:
        """The sleeps before each retry: interval_start, growing by interval_step, capped at interval_max."""
        return [min(self.interval_start + i * self.interval_step, self.interval_max) for i in range(self.max_retries)]


def publish_retry(retry: object, policy: object) -> PublishRetry | None:
    """Return the publish retry that retry= and retry_policy= ask for (None: one attempt, then the sweep)."""
    if flag("retry", retry) is not True:
        if policy is not None and retry is False:
            raise InvalidCall("retry_policy= has no effect with retry=False: drop one of them.")
        if policy is None:
            return None
    if policy is None:
        return PublishRetry()
    if not isinstance(policy, Mapping):
        raise InvalidCall(f"retry_policy must be a dict such as {{'max_retries': 3}}, not {policy!r}.")
    unknown = sorted(str(k) for k in policy if k not in RETRY_POLICY_KEYS)
    if unknown:
        raise InvalidCall(f"retry_policy has unknown keys {unknown}; it takes {', '.join(RETRY_POLICY_KEYS)}.")
    if policy.get("retry_errors") is not None:
        raise InvalidCall("retry_policy['retry_errors']: djtasks retries a publish on connection errors only.")
    count = policy.get("max_retries", 3)
    if type(count) is not int or not 0 <= count <= 100:
        raise InvalidCall(
            f"retry_policy['max_retries'] must be a whole number from 0 to 100, not {count!r} (None would block "
            "the caller for ever: a call is never lost, the outbox sweep publishes it once Redis is back)."
        )
    intervals = {}
    for key, default in (("interval_start", 0.0), ("interval_step", 0.2), ("interval_max", 0.2)):
        value = seconds(f"retry_policy[{key!r}]", policy.get(key, default))
        if not 0 <= value <= 3600:
            raise InvalidCall(f"retry_policy[{key!r}] must be between 0 and 3600 seconds, not {value!r}.")
        intervals[key] = value
    return PublishRetry(max_retries=count, **intervals)


def refuse_unsupported(options: dict[str, Any]) -> None:
    """Raise InvalidCall for an option djtasks does not know, or a value of Celery's it cannot honour."""
    for name, value in options.items():
        option = CELERY_OPTIONS.get(name)
        if option is None:
            if name in OWN_OPTIONS:
                continue
            close = difflib.get_close_matches(name, [*CELERY_OPTIONS, *OWN_OPTIONS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidCall(f"Unknown option {name!r}{hint}: see djtasks.core.options.CELERY_OPTIONS.")
        if option.support == HONOURED or name == "routing_key":  # route_key() checks the routing key
            continue
        if value is not None and not any(value is ok or value == ok for ok in option.accepts):
            raise InvalidCall(f"{name}={value!r} is not supported: {option.meaning}.")


def route_key(queue: object, routing_key: object) -> object:
    """Return the queue a call names with queue= and routing_key= (Celery's direct routing)."""
    if routing_key is None:
        return queue
    if queue is not None and queue != routing_key:
        raise InvalidCall(f"routing_key={routing_key!r} with queue={queue!r}: {CELERY_OPTIONS['routing_key'].meaning}.")
    return routing_key


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOptions:
    task_id: str | None = None
    queue: str | None = None
    priority: int | None = None
    eta: datetime | None = None
    expires: datetime | None = None
    ignore_result: bool | None = None
    link: tuple[dict[str, Any], ...] = ()
    link_error: tuple[dict[str, Any], ...] = ()
    headers: dict[str, Any] = field(default_factory=dict)
    # Stored on the row (its `options`) and applied by the worker to this call only.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    shadow: str | None = None
    add_to_parent: bool | None = None
    # Not stored: how the after-commit publish of this call retries.
    publish_retry: PublishRetry | None = None
    # Set by the canvas: where this invocation sits in a workflow.
    parent_id: str = ""
    root_id: str = ""
    group_id: str = ""
    chain: tuple[dict[str, Any], ...] = ()
    chord: str = ""
    retries: int = 0

    @classmethod
    def build(cls, **options: Any) -> ExecutionOptions:
        """Validate apply_async's keywords (see CELERY_OPTIONS) and fold countdown into an aware eta."""
        refuse_unsupported(options)
        get = options.get
        now = timezone.now()
        countdown, eta, priority = get("countdown"), get("eta"), get("priority")
        if countdown is not None and eta is not None:
            raise InvalidCall("Pass either countdown or eta, not both.")
        if priority is not None and get("celery_priority") is not None:
            raise InvalidCall("Pass either priority (-100..100) or celery_priority (0..9), not both.")
        celery_priority = get("celery_priority")
        if celery_priority is not None:
            priority = from_celery_priority(celery_priority)
        if countdown is not None:
            eta = later(now, "countdown", countdown)
        elif eta is not None:
            eta = aware(eta, "eta")
        task_id, queue, shadow = get("task_id"), route_key(get("queue"), get("routing_key")), get("shadow")
        parent_id, root_id, group_id, chord = (
            check_name(what, get(what), ID_LENGTH) if get(what) else ""
            for what in ("parent_id", "root_id", "group_id", "chord")
        )
        retries = get("retries", 0)
        if type(retries) is not int or not 0 <= retries <= MAX_RETRIES_COUNT:
            raise InvalidCall(f"retries must be a whole number between 0 and {MAX_RETRIES_COUNT}, not {retries!r}.")
        hard, soft = limit("time_limit", get("time_limit")), limit("soft_time_limit", get("soft_time_limit"))
        if hard is not None and soft is not None and soft > hard:
            raise InvalidCall(f"soft_time_limit ({soft:g} s) must not exceed time_limit ({hard:g} s).")
        headers = get("headers")
        if headers is not None and not isinstance(headers, Mapping):
            raise InvalidCall(f"headers must be a dict, not {type(headers).__name__}.")
        try:
            headers = plain(dict(headers or {}), "headers")
        except Unstorable as exc:
            raise InvalidCall(f"Header {exc.path} cannot be stored: it {exc.problem}.") from None
        return cls(
            task_id=None if task_id is None else check_name("task_id", task_id, ID_LENGTH),
            queue=None if queue is None else check_name("queue", queue, QUEUE_LENGTH),
            priority=priority,
            eta=eta,
            expires=expiry(get("expires"), now),
            ignore_result=flag("ignore_result", get("ignore_result")),
            link=signatures(get("link"), "link"),
            link_error=signatures(get("link_error"), "link_error"),
            headers=headers,
            time_limit=hard,
            soft_time_limit=soft,
            shadow=None if shadow is None else check_name("shadow", shadow, ID_LENGTH),
            add_to_parent=flag("add_to_parent", get("add_to_parent")),
            publish_retry=publish_retry(get("retry"), get("retry_policy")),
            parent_id=parent_id,
            root_id=root_id,
            group_id=group_id,
            chain=signatures(get("chain"), "chain"),
            chord=chord,
            retries=retries,
        )

    def stored(self) -> dict[str, Any]:
        """What the row keeps of this call's options (its `options` field), for the worker and the admin."""
        kept = {"time_limit": self.time_limit, "soft_time_limit": self.soft_time_limit, "shadow": self.shadow}
        if self.add_to_parent is False:
            kept["add_to_parent"] = False
        return {key: value for key, value in kept.items() if value is not None}


# What a call without options (delay()) uses: nothing in it depends on the time of the call.
NO_OPTIONS = ExecutionOptions()
