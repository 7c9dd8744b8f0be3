"""The fault suite's checker: compare what was enqueued with what the ledger says ran."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from djtasks.models import TaskRecord


@dataclass
class Entry:
    kind: str
    key: str
    pid: int
    at: float


def read(path: Path) -> list[Entry]:
    entries = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in ("start", "end"):
            entries.append(Entry(parts[0], parts[1], int(parts[2]), float(parts[3])))
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


def check(path: Path, keys: list[str], ids: list[str], *, since: float | None = None) -> Verdict:
    """Count lost tasks (no SUCCESS row) and tasks the ledger shows starting or ending twice.

    With `since` (a fault's time), recovery is the time from the fault to the first start of a
    task that had started but not ended before it.
    """
    entries = read(path)
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
    if since is not None:
        interrupted = {e.key for e in entries if e.kind == "start" and e.at < since} - {
            e.key for e in entries if e.kind == "end" and e.at < since
        }
        restarts = [e.at for e in entries if e.kind == "start" and e.key in interrupted and e.at >= since]
        if restarts:
            verdict.recovery_s = max(restarts) - since
    return verdict


def wait_all_done(ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if TaskRecord.objects.filter(pk__in=ids, state="SUCCESS").count() == len(ids):
            return True
        time.sleep(0.2)
    return False
