"""AsyncResult: Celery's reading API over the task row, woken by Redis when the task finishes."""

from __future__ import annotations

import time
from typing import Any

from django.db import router
from django.db.models import Q

from djtasks.calling.rebuild import rebuild_exception, stored_exception
from djtasks.calling.revoke import revoke
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable, InvalidCall
from djtasks.core.exceptions import TimeoutError as ResultTimeout
from djtasks.core.states import FAILURE, PENDING, READY_STATES, RETRY, REVOKED, SUCCESS
from djtasks.record import reading, sql
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker

__all__ = ["AsyncResult", "GroupResult", "rebuild_exception", "result_from_tuple"]
# While waiting, re-read the row at least this often in case a wake-up was missed.
RECHECK_SECONDS = 1.0
# A handle's get() within this long of the enqueue that returned it skips the read before the
# subscription (see AsyncResult.enqueued).
FRESH_SECONDS = 0.05


def _sleep_then_recheck(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class AsyncResult[R]:
    """The result of a task invocation, read from its row (R: what the task returns)."""

    _fresh_until = 0.0  # see enqueued()

    def __init__(self, id: str, task_name: str | None = None, parent: Any = None):  # noqa: A002 - Celery's name
        self.id = str(id)
        self.task_name = task_name
        self._parent = parent

    @classmethod
    def enqueued(cls, task_id: str, task_name: str) -> AsyncResult[Any]:
        """The handle apply_async() returns: a get() soon after it does not read the row before subscribing.

        get() reads the row, subscribes, then reads it again once Redis has the subscription.
        Straight after an enqueue the first read finds the task unfinished (its message may not
        even have reached Redis): it was one of the caller's three statements per round trip,
        9% of the caller's CPU (measured). Skipping it changes no outcome, only the cost of a get()
        on a task that is done already (a unique call's earlier task, a fast worker): one subscription
        more.
        Not in eager mode (TASK_ALWAYS_EAGER), where the task has run already and Redis may be absent.
        """
        result: AsyncResult[Any] = cls(task_id, task_name=task_name)
        if not get_settings().TASK_ALWAYS_EAGER:
            result._fresh_until = time.monotonic() + FRESH_SECONDS
        return result

    @property
    def parent(self) -> Any:
        """The result of the task that called this one in a chain (read from the row if not known)."""
        if self._parent is None:
            record = self._record()
            if record is not None and record.parent_id:
                self._parent = AsyncResult(record.parent_id)
        return self._parent

    @parent.setter
    def parent(self, value: Any) -> None:
        self._parent = value

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _record(self) -> TaskRecord | None:
        return sql.read_rows(router.db_for_read(TaskRecord), [self.id]).get(self.id)

    @property
    def state(self) -> str:
        """The row's state, or the state the running task reported with update_state()."""
        record = self._record()
        if record is None:
            return PENDING
        reported = record.reported_state
        return reported[0] if reported else record.state

    status = state

    def ready(self) -> bool:
        return self.state in READY_STATES

    def successful(self) -> bool:
        return self.state == SUCCESS

    def failed(self) -> bool:
        return self.state == FAILURE

    @property
    def result(self) -> Any:
        """The return value; the exception of a failed or retrying task; a custom state's meta (as in Celery)."""
        record = self._record()
        if record is None:
            return None
        if record.state in (FAILURE, REVOKED, RETRY):
            return stored_exception(record)
        if record.state == SUCCESS:
            return record.result
        reported = record.reported_state
        return reported[1] if reported else None

    info = result

    def _field(self, name: str) -> Any:
        record = self._record()
        return getattr(record, name) if record is not None else None

    progress = property(lambda self: self._field("progress"), doc="What djtasks.report_progress() last recorded.")
    date_done = property(lambda self: self._field("finished_at"), doc="When the task finished (None until then).")
    args = property(lambda self: self._field("args"), doc="The positional arguments of the call.")
    kwargs = property(lambda self: self._field("kwargs"), doc="The keyword arguments of the call.")
    retries = property(lambda self: self._field("retries"), doc="How many times the task asked to be retried.")
    queue = property(lambda self: self._field("queue"), doc="The queue the call went to.")
    worker = property(lambda self: self._field("worker") or None, doc="The worker of the latest attempt.")

    @property
    def name(self) -> str | None:
        """The task's name (as Celery's, the registered name; a shadow= name is only shown, not stored here)."""
        return self._field("task_name") or self.task_name

    @property
    def traceback(self) -> str | None:
        return self._field("traceback") or None

    @property
    def children(self) -> list[AsyncResult[Any]]:
        """The calls made by this task (or that follow it in a workflow), oldest first."""
        rows = (
            TaskRecord.objects.using(router.db_for_read(TaskRecord))
            .filter(parent_id=self.id)
            .filter(Q(options__add_to_parent__isnull=True) | Q(options__add_to_parent=True))
            .order_by("enqueued_at", "id")
            .values_list("id", "task_name")
        )
        return [AsyncResult(task_id, task_name=name, parent=self) for task_id, name in rows]

    def forget(self) -> None:
        """Delete the finished task's row (and its parents', as Celery); a row that has not finished is kept."""
        record = self._record()
        if record is not None and record.state not in READY_STATES:
            raise InvalidCall(f"Task {self.id} has not finished ({record.state}): revoke it, or wait, then forget it.")
        if self._parent is not None or (record is not None and record.parent_id):
            self.parent.forget()
        TaskRecord.objects.using(router.db_for_write(TaskRecord)).filter(pk=self.id).delete()

    def as_tuple(self) -> tuple[Any, Any]:
        """Celery's ((id, parent tuple), None), for result_from_tuple()."""
        parent = self._parent
        return (self.id, parent.as_tuple() if parent is not None else None), None

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait for the task to finish and return its value (or raise its exception)."""
        if time.monotonic() >= self._fresh_until:  # else just enqueued: read only once subscribed
            finished = self._finished()
            if finished is not None:  # no wake-up to wait for
                return self._settled(finished, propagate)  # type: ignore[no-any-return]
        self._fresh_until = 0.0
        deadline = None if timeout is None else time.monotonic() + timeout
        confirm = RECHECK_SECONDS if timeout is None else min(timeout, RECHECK_SECONDS)
        try:
            with get_broker().subscription([self.id], confirm_within=confirm) as wait:
                return self._wait(wait, deadline, propagate)  # type: ignore[no-any-return]
        except BrokerUnavailable:
            # Without Redis there is no wake-up: read the row once a second instead.
            return self._wait(_sleep_then_recheck, deadline, propagate)  # type: ignore[no-any-return]

    wait = get

    def revoke(self, terminate: bool = False) -> str:
        """Revoke the task (see djtasks.calling.revoke); a waiting task will never start."""
        return revoke(self.id, terminate=terminate)

    def _wait(self, wait: Any, deadline: float | None, propagate: bool) -> Any:
        while True:
            finished = self._finished()
            if finished is not None:
                return self._settled(finished, propagate)
            remaining = RECHECK_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(f"The operation timed out: task {self.id} is not ready.")
            wait(min(remaining, RECHECK_SECONDS))

    def _finished(self) -> tuple[TaskRecord | None, Any] | None:
        """None while the task has not finished; else (None, its value) for a success, (its row, None) otherwise.

        Only the state and the result are read (reading.read_state): the whole row, to rebuild an
        exception, only for a task that did not succeed.
        """
        found = reading.read_state(router.db_for_read(TaskRecord), self.id)
        if found is None or found[0] not in READY_STATES:
            return None
        if found[0] == SUCCESS:
            return None, found[1]
        record = self._record()
        return (record, None) if record is not None and record.state in READY_STATES else None

    def _settled(self, finished: tuple[TaskRecord | None, Any], propagate: bool) -> Any:
        record, value = finished
        return value if record is None else self._outcome(record, propagate)

    @staticmethod
    def _outcome(record: TaskRecord, propagate: bool) -> Any:
        if record.state == SUCCESS:
            return record.result
        exc = stored_exception(record)
        if propagate:
            raise exc
        return exc


def result_from_tuple(value: Any) -> Any:
    """Rebuild an AsyncResult or a GroupResult from Celery's as_tuple() form."""
    if isinstance(value, AsyncResult | GroupResult):
        return value
    (task_id, parent), nodes = value
    parent_result = result_from_tuple(parent) if parent else None
    if nodes is not None:
        result = GroupResult(task_id, [result_from_tuple(node) for node in nodes])
        result.parent = parent_result
        return result
    return AsyncResult(task_id, parent=parent_result)


class GroupResult:
    """The results of a group, in the group's order."""

    def __init__(self, id: str, results: list[AsyncResult]):  # noqa: A002 - Celery's name
        self.id = str(id)
        self.results = list(results)
        self.parent = None

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __iter__(self) -> Any:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    children = property(lambda self: self.results)

    def _states(self) -> list[str]:
        rows = dict(
            TaskRecord.objects.using(router.db_for_read(TaskRecord))
            .filter(pk__in=[r.id for r in self.results])
            .values_list("id", "state")
        )
        return [rows.get(r.id, PENDING) for r in self.results]

    def ready(self) -> bool:
        return all(state in READY_STATES for state in self._states())

    def successful(self) -> bool:
        return all(state == SUCCESS for state in self._states())

    def failed(self) -> bool:
        return any(state == FAILURE for state in self._states())

    def completed_count(self) -> int:
        return sum(state == SUCCESS for state in self._states())

    def waiting(self) -> bool:
        return not self.ready()

    def get(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        """Wait for every member; return their results in order (or raise the first error)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            values.append(result.get(timeout=remaining, propagate=propagate))
        return values

    join = get
