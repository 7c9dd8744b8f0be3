"""AsyncResult: Celery's reading API over the task row, woken by Redis when the task finishes."""

from __future__ import annotations

import builtins
import inspect
import sys
import time
from typing import Any

from django.db import router

from djtasks.calling.revoke import revoke
from djtasks.core import exceptions
from djtasks.core.exceptions import BrokerUnavailable, TaskFailed, TaskRevoked
from djtasks.core.exceptions import TimeoutError as ResultTimeout
from djtasks.core.states import FAILURE, PENDING, READY_STATES, REVOKED, SUCCESS
from djtasks.record import sql
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker

# While waiting, re-read the row at least this often in case a wake-up was missed.
RECHECK_SECONDS = 1.0


def rebuild_exception(exc_type: str, message: str, traceback: str) -> BaseException:
    """Rebuild a task's exception without importing anything named by stored data.

    Builtin exceptions and exception classes from modules this process has already imported are
    re-created; anything else becomes TaskFailed carrying the class path, message and traceback.
    """
    module_name, _, qualname = exc_type.rpartition(".")
    candidate: Any = None
    if module_name == "builtins":
        candidate = getattr(builtins, qualname, None)
    elif module_name == exceptions.PUBLIC_MODULE:
        candidate = getattr(exceptions, qualname, None)
    elif module_name in sys.modules and "." not in qualname:
        candidate = getattr(sys.modules[module_name], qualname, None)
    exc: BaseException | None = None
    if inspect.isclass(candidate) and issubclass(candidate, Exception):
        try:
            exc = candidate(message)
        except Exception:  # noqa: BLE001 - a constructor with another signature: fall back
            exc = None
    if exc is None:
        exc = TaskFailed(exc_type, message, traceback)
    if traceback:
        exc.add_note(f"Remote traceback:\n{traceback}")
    return exc


def _sleep_then_recheck(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class AsyncResult:
    """The result of a task invocation, read from its row."""

    def __init__(self, id: str, task_name: str | None = None, parent: Any = None):  # noqa: A002 - Celery's name
        self.id = str(id)
        self.task_name = task_name
        self._parent = parent

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
        record = self._record()
        return record.state if record else PENDING

    status = state

    def ready(self) -> bool:
        return self.state in READY_STATES

    def successful(self) -> bool:
        return self.state == SUCCESS

    def failed(self) -> bool:
        return self.state == FAILURE

    @property
    def result(self) -> Any:
        """The return value, or for a failed task its exception (as in Celery)."""
        record = self._record()
        if record is None:
            return None
        if record.state in (FAILURE, REVOKED):
            return self._exception(record)
        return record.result if record.state == SUCCESS else None

    info = result

    @property
    def progress(self) -> dict[str, Any] | None:
        """What the task last reported with djtasks.report_progress(), or None."""
        record = self._record()
        return record.progress if record else None

    @property
    def traceback(self) -> str | None:
        record = self._record()
        return (record.traceback or None) if record else None

    @property
    def date_done(self) -> Any:
        record = self._record()
        return record.finished_at if record else None

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Wait for the task to finish and return its value (or raise its exception)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with get_broker().subscription([self.id]) as wait:
                return self._wait(wait, deadline, propagate)
        except BrokerUnavailable:
            # Without Redis there is no wake-up: read the row once a second instead.
            return self._wait(_sleep_then_recheck, deadline, propagate)

    wait = get

    def revoke(self, terminate: bool = False) -> str:
        """Revoke the task (see djtasks.calling.revoke); a waiting task will never start."""
        return revoke(self.id, terminate=terminate)

    def _wait(self, wait: Any, deadline: float | None, propagate: bool) -> Any:
        while True:
            record = self._record()
            if record is not None and record.state in READY_STATES:
                return self._outcome(record, propagate)
            remaining = RECHECK_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(f"The operation timed out: task {self.id} is not ready.")
            wait(min(remaining, RECHECK_SECONDS))

    def _outcome(self, record: TaskRecord, propagate: bool) -> Any:
        if record.state == SUCCESS:
            return record.result
        exc = self._exception(record)
        if propagate:
            raise exc
        return exc

    @staticmethod
    def _exception(record: TaskRecord) -> BaseException:
        if record.state == REVOKED:
            return TaskRevoked(record.exception_message or f"Task {record.id} was revoked.")
        return rebuild_exception(record.exception_type, record.exception_message, record.traceback)


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
