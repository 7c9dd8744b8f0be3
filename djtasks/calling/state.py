"""update_state(): a running task reports a state of its own (Celery's custom states) and meta, on its row.

Readers see them through AsyncResult.state and .info while the attempt runs; once it ends, the
row's own state (SUCCESS, FAILURE, RETRY...) is what they read. The outcome of a task stays what
it returns or raises: update_state() cannot write SUCCESS, FAILURE, REVOKED, RETRY or PENDING.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from djtasks.core.context import current
from djtasks.core.exceptions import InvalidCall
from djtasks.core.options import ID_LENGTH, check_name
from djtasks.core.states import FAILURE, PENDING, RETRY, REVOKED, RUNNABLE, SUCCESS
from djtasks.core.values import Unstorable, plain
from djtasks.record import sql

OUTCOMES = {
    SUCCESS: "return the value",
    FAILURE: "raise an exception",
    REVOKED: "revoke it from outside (djtasks.revoke)",
    RETRY: "call self.retry()",
    PENDING: "it is PENDING until a worker takes it",
}


def update_state(
    task: Any, task_id: str | None = None, state: str | None = None, meta: Any = None, **kwargs: Any
) -> bool:
    """Record a state and meta for the running attempt of `task`; False outside a worker or once its lease is lost.

    Raises InvalidCall for a state that is an outcome, meta that cannot be stored, or another task's id.
    """
    if kwargs:
        raise InvalidCall(f"update_state() takes task_id, state and meta, not {', '.join(sorted(kwargs))}.")
    running = current()
    if running is None or running.task_name != task.registered_name:
        return False  # called directly, or by apply(): there is no row to write
    if task_id is not None and task_id != running.id:
        raise InvalidCall(
            f"update_state(task_id={task_id!r}): a running task may update only its own row ({running.id})."
        )
    if state is None:
        raise InvalidCall("update_state() needs a state, e.g. update_state(state='PROGRESS', meta={'done': 3}).")
    state = check_name("state", state, ID_LENGTH)
    if state in OUTCOMES:
        raise InvalidCall(
            f"update_state(state={state!r}): the worker records a task's outcome from what it does; "
            f"to end in {state}, {OUTCOMES[state]}."
        )
    try:
        meta = plain(meta, "meta")
    except Unstorable as exc:
        raise InvalidCall(f"update_state(): {exc.path} cannot be stored: it {exc.problem}.") from None
    value = {"state": state, "meta": meta, "attempt": running.attempt, "at": timezone.now().isoformat()}
    return bool(sql.update(running.db, {"reported": value}, id=running.id, lease_token=running.token, state=RUNNABLE))
