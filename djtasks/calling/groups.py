"""GroupResult: the results of a group, nested groups included, persisted on request (save/restore).

A group is not a row of its own: its members are. save() records which results make it up (in
the djtasks_group table), so restore(id) rebuilds it in another process; revoke() and forget()
act on every member.
"""

from __future__ import annotations

from typing import Any

from django.db import router, transaction

from djtasks.calling import result
from djtasks.calling.result import AsyncResult
from djtasks.calling.revoke import revoke
from djtasks.core.states import PENDING, READY_STATES, SUCCESS
from djtasks.record.models import GroupRecord, TaskRecord


class GroupResult(result.GroupResult):
    """The results of a group, in the group's order; a member may be a GroupResult itself."""

    def leaves(self) -> list[AsyncResult]:
        """Every task result in the group, nested groups flattened."""
        found: list[AsyncResult] = []
        for member in self.results:
            found.extend(member.leaves() if isinstance(member, GroupResult) else [member])
        return found

    def _states(self) -> list[str]:
        """The leaves' states: read from their rows in one query (an eager result knows its own)."""
        leaves = self.leaves()
        ids = [r.id for r in leaves if isinstance(r, AsyncResult)]
        rows = dict(
            TaskRecord.objects.using(router.db_for_read(TaskRecord)).filter(pk__in=ids).values_list("id", "state")
        )
        return [rows.get(r.id, PENDING) if isinstance(r, AsyncResult) else r.state for r in leaves]

    def completed_count(self) -> int:
        """How many members succeeded (a nested group counts once, when all of it did), as in Celery."""
        states = dict(zip([id(r) for r in self.leaves()], self._states(), strict=True))
        return sum(
            member.successful() if isinstance(member, GroupResult) else states[id(member)] == SUCCESS
            for member in self.results
        )

    def save(self) -> GroupResult:
        """Record the group's members, so that GroupResult.restore(id) finds them; return self."""
        db = router.db_for_write(GroupRecord)
        GroupRecord.objects.using(db).update_or_create(id=self.id, defaults={"results": as_tuple(self)[1]})
        return self

    @classmethod
    def restore(cls, group_id: str) -> GroupResult | None:
        """Rebuild a saved group (None if it was never saved, or forgotten), as Celery's restore()."""
        row = GroupRecord.objects.using(router.db_for_read(GroupRecord)).filter(pk=group_id).first()
        if row is None:
            return None
        members: list[Any] = [from_tuple(node) for node in row.results]
        return cls(row.id, members)

    def revoke(self, terminate: bool = False, **options: Any) -> list[str]:
        """Revoke every member (see djtasks.revoke); return what happened to each, in order."""
        return [revoke(member.id, terminate=terminate) for member in self.leaves()]

    def forget(self) -> None:
        """Delete the saved group and its members' finished rows; unfinished members keep theirs."""
        db = router.db_for_write(TaskRecord)
        with transaction.atomic(using=db):
            ids = [member.id for member in self.leaves()]
            TaskRecord.objects.using(db).filter(pk__in=ids, state__in=READY_STATES).delete()
            GroupRecord.objects.using(db).filter(pk=self.id).delete()


def as_tuple(value: Any) -> Any:
    """Celery's as_tuple(): ((id, parent), None) for a task, ((id, parent), [members]) for a group."""
    parent = value.parent if isinstance(value, GroupResult) else getattr(value, "_parent", None)
    parent_tuple = as_tuple(parent) if isinstance(parent, AsyncResult | result.GroupResult) else None
    if isinstance(value, result.GroupResult):
        return (value.id, parent_tuple), [as_tuple(member) for member in value.results]
    return (value.id, parent_tuple), None


def from_tuple(value: Any) -> AsyncResult | result.GroupResult:
    """Rebuild a result from as_tuple()'s form (lists, as JSON stores it): Celery's result_from_tuple()."""
    if isinstance(value, AsyncResult | result.GroupResult):
        return value
    (task_id, parent), members = value
    rebuilt_parent = from_tuple(parent) if parent else None
    if members is not None:
        rebuilt: list[Any] = [from_tuple(member) for member in members]
        group = GroupResult(task_id, rebuilt)
        group.parent = rebuilt_parent  # type: ignore[assignment]
        return group
    return AsyncResult(task_id, parent=rebuilt_parent)


result_from_tuple = from_tuple
