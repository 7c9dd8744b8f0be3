"""Remote control works through the supervisor's small public interface (worker/pool.py) alone."""

from dataclasses import dataclass, field
from datetime import datetime

import pytest
from django.utils import timezone

from djtasks.core.commands import COMMANDS, INSPECTIONS
from djtasks.core.conf import Settings, get_settings
from djtasks.worker.pool import ChildView
from djtasks.worker.protocol import ChildLimits
from djtasks.worker.remote import CommandError, Remote


def child(index: int, *, executing: str | None = None, retiring: bool = False) -> ChildView:
    return ChildView(
        index=index, pid=1000 + index, processed=0, held=(), executing=executing, running_s=0.0, retiring=retiring
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
