"""Remote control works through the supervisor's small public interface (worker/pool.py) alone."""

from dataclasses import dataclass, field
from datetime import datetime

import pytest
from django.utils import timezone

from djtasks.core.commands import COMMANDS, INSPECTIONS
from djtasks.core.conf import Settings, get_settings
from djtasks.core.states import PENDING, RETRY, STARTED, SUCCESS
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Claim
from djtasks.worker.pool import ChildView
from djtasks.worker.protocol import ChildLimits
from djtasks.worker.remote import CommandError, Remote


def child(index: int, *, executing: str | None = None, retiring: bool = False, held: tuple[str, ...] = ()) -> ChildView:
    claims = tuple(Claim(id=i, envelope=b"{}", deliveries=1, token="t", queue="default") for i in held)
    return ChildView(
        index=index, pid=1000 + index, processed=0, held=claims, executing=executing, running_s=0.0, retiring=retiring
    )


@dataclass
class FakePool:
    views: list[ChildView]
    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 3
    stopping: bool = False
    worker_id: str = "w.1"
    db: str = "default"
    started_at: datetime = field(default_factory=timezone.now)
    limits: ChildLimits = field(default_factory=ChildLimits)
    retired: list[int] = field(default_factory=list)
    stops: int = 0

    @property
    def config(self) -> Settings:
        return get_settings()

    def children(self) -> list[ChildView]:
        return self.views

    def collect(self) -> None:
        pass

    def grow(self, n: int) -> None:
        self.concurrency += n

    def retire(self, indexes: list[int]) -> None:
        self.retired += indexes
        self.concurrency -= len(indexes)

    def set_queues(self, queues: list[str]) -> None:
        self.queues = queues

    def revoke(self, task_id: str, *, terminate: bool) -> None:
        pass

    def request_warm_stop(self) -> None:
        self.stops += 1


def test_every_command_and_inspection_has_an_entry_in_the_tables():
    remote = Remote(FakePool([child(0)]))
    assert set(remote.commands) == set(COMMANDS)
    assert tuple(remote.inspections) == INSPECTIONS


def test_pool_shrink_retires_idle_children_first_then_the_newest():
    pool = FakePool([child(0), child(1, executing="t"), child(2), child(3, retiring=True)])
    reply = Remote(pool).commands["pool_shrink"](n=2)
    assert pool.retired == [2, 0]
    assert reply == "pool shrunk by 2 to 1 (stopping children [0, 2])"


def test_pool_shrink_keeps_one_child_serving():
    pool = FakePool([child(0), child(1, retiring=True)])
    with pytest.raises(CommandError, match="cannot stop 1 of 1 children: at least one must stay"):
        Remote(pool).commands["pool_shrink"](n=1)


def test_pool_grow_is_refused_while_stopping():
    with pytest.raises(CommandError, match="the worker is shutting down"):
        Remote(FakePool([child(0)], stopping=True)).commands["pool_grow"](n=1)


def test_pool_grow_stops_at_max_concurrency():
    pool = FakePool([child(0)], concurrency=get_settings().MAX_CONCURRENCY - 1)
    Remote(pool).commands["pool_grow"](n=1)
    with pytest.raises(CommandError, match="MAX_CONCURRENCY is"):
        Remote(pool).commands["pool_grow"](n=1)


def test_consumers_change_the_pool_queues():
    pool = FakePool([child(0)])
    remote = Remote(pool)
    assert remote.commands["add_consumer"](queue="other") == "now consuming from 'other'"
    assert pool.queues == ["default", "other"]
    assert remote.commands["cancel_consumer"](queue="default") == "no longer consuming from 'default'"
    with pytest.raises(CommandError, match="'other' is the only queue of this worker"):
        remote.commands["cancel_consumer"](queue="other")


def test_shutdown_replies_before_it_stops_the_pool():
    pool = FakePool([child(0)])
    reply, after = Remote(pool).commands["shutdown"]()
    assert (reply, pool.stops) == ("warm shutdown started", 0)
    after()
    assert pool.stops == 1


@pytest.mark.django_db
def test_inspections_leave_out_tasks_whose_record_shows_the_child_is_done_with_them():
    """A child records an outcome, then reports it: in between, its parent still thinks it executes
    the task. A caller's get() can return in that gap, so inspect active and reserved read the rows."""
    for pk, state in [("run", STARTED), ("done", SUCCESS), ("again", RETRY), ("queued", PENDING), ("over", SUCCESS)]:
        TaskRecord.objects.create(id=pk, task_name="app.tasks.add", state=state, args=[1, 2])
    pool = FakePool(
        [
            child(0, executing="run", held=("run", "queued", "over")),
            child(1, executing="done", held=("done",)),
            child(2, executing="again", held=("again", "again-next")),
            child(3, executing="unrecorded", held=("unrecorded",)),
        ]
    )
    remote = Remote(pool)
    active = remote.inspections["active"]()
    assert [(row["id"], row["child"]) for row in active] == [("run", 0), ("unrecorded", 3)]
    assert active[0]["args"] == 2 and "state" not in active[0]
    # Reserved: held, not executing. A finished one is dropped; one whose attempt ended in RETRY
    # waits for its next attempt, and a row not written yet is still listed by id.
    reserved = remote.inspections["reserved"]()
    assert [(row["id"], row["child"]) for row in reserved] == [("queued", 0), ("again-next", 2)]
