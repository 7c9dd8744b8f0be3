"""The fault suite's checker: compare what was enqueued with what the ledger says ran."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.db import OperationalError, connection

from djtasks.models import TaskRecord


@dataclass
class Entry:
    kind: str
    key: str
    pid: int
    at: float


def read(path: Path, offsets: dict[int, float] | None = None) -> list[Entry]:
    """Read the ledger; `offsets` (pid -> seconds its clock runs ahead, tests/support/hosts.py) puts
    every entry on the real clock."""
    entries = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in ("start", "end"):
            pid = int(parts[2])
            entries.append(Entry(parts[0], parts[1], pid, float(parts[3]) - (offsets or {}).get(pid, 0.0)))
    return entries


@dataclass
class Verdict:
    enqueued: int
    succeeded: int
    lost: list[str]
    started_twice: list[str]
    completed_twice: list[str]
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)
    # Completed twice because a kill struck after the first run's side effect (its ledger
    # "end") and before its outcome was committed: at-least-once, counted and explained.
    explained: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[str]:
        return [key for key in self.completed_twice if key not in self.explained]


# The longest a finished outcome can wait for its commit: a child holds fast tasks' outcomes
# for up to 20 ms (child.FLUSH_AFTER) plus the next batch; a loaded machine stretches that.
COMMIT_WINDOW_S = 2.0


def check(
    path: Path,
    keys: list[str],
    ids: list[str],
    *,
    since: float | None = None,
    kills: Sequence[float | tuple[float, float]] = (),
    offsets: dict[int, float] | None = None,
    killed: Collection[int] = (),
    in_hand: int = 0,
) -> Verdict:
    """Count lost tasks (no SUCCESS row) and tasks the ledger shows starting or ending twice.

    With `since` (a fault's time), recovery is the time from the fault to the first start of a
    task that had started but not ended before it. With `kills`, a task completed twice is
    explained when its first end fell within COMMIT_WINDOW_S before one of the kills; a kill given
    as (not before, not after) is one whose moment is known only that closely (the kill of a host
    runs `ip netns pids` first, which a loaded machine can stretch to seconds). With `killed`
    (pids of SIGKILLed children) and `in_hand` (the most a child holds unrecorded: a batch), a task
    is explained too when its first run was among the last `in_hand` a killed child started,
    however long the child took to commit them. `offsets`: see read().
    """
    entries = read(path, offsets)
    starts = Counter(e.key for e in entries if e.kind == "start")
    ends = Counter(e.key for e in entries if e.kind == "end")
    done = set(TaskRecord.objects.filter(pk__in=ids, state="SUCCESS").values_list("pk", flat=True))
    verdict = Verdict(
        enqueued=len(ids),
        succeeded=len(done),
        lost=[task_id for task_id in ids if task_id not in done],
        started_twice=sorted(k for k in keys if starts[k] > 1),
        completed_twice=sorted(k for k in keys if ends[k] > 1),
    )
    first_end: dict[str, float] = {}
    first_pid: dict[str, int] = {}
    started_by: dict[int, list[str]] = {pid: [] for pid in killed}  # each killed child's starts, in order
    for e in entries:
        if e.kind == "end":
            first_end.setdefault(e.key, e.at)
        elif e.kind == "start":
            first_pid.setdefault(e.key, e.pid)
            if e.pid in started_by:
                started_by[e.pid].append(e.key)
    windows = [kill if isinstance(kill, tuple) else (kill, kill) for kill in kills]
    last_runs = {key for started in started_by.values() for key in (started[-in_hand:] if in_hand else [])}
    verdict.explained = [
        key
        for key in verdict.completed_twice
        if any(earliest - COMMIT_WINDOW_S <= first_end[key] <= latest for earliest, latest in windows)
        or (key in last_runs and first_pid[key] in killed)
    ]
    if since is not None:
        interrupted = {e.key for e in entries if e.kind == "start" and e.at < since} - {
            e.key for e in entries if e.kind == "end" and e.at < since
        }
        restarts = [e.at for e in entries if e.kind == "start" and e.key in interrupted and e.at >= since]
        if restarts:
            verdict.recovery_s = max(restarts) - since
    return verdict


def wait_all_done(ids: list[str], timeout: float) -> bool:
    """Wait until every id's row is SUCCESS; a database that refuses a look (an outage ending,
    PgBouncer still waiting to log in again) is asked again on a new connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if TaskRecord.objects.filter(pk__in=ids, state="SUCCESS").count() == len(ids):
                return True
        except OperationalError:
            connection.close()
        time.sleep(0.2)
    return False


def start_gaps(ids: list[str]) -> list[float]:
    """Seconds between the recorded starts (started_at) of these rows, in order of start.

    A start a rate limit lets through is stamped at its grant, so these are the gaps the limiter
    made; the task bodies' own times also measure how long each batch took to reach them."""
    times = sorted(TaskRecord.objects.filter(pk__in=ids).values_list("started_at", flat=True))
    return [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
