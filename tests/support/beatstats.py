"""Figures of a periodic task's runs: fired, duplicates, missed, lateness (tests and benchmarks/beat_200.py)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from djtasks.models import PeriodicRun, PeriodicTask, TaskRecord


@dataclass
class BeatFigures:
    fired: int
    expected: int
    duplicates: int
    missed: int
    executed: int
    fire_lateness_ms: list[float]
    start_lateness_ms: list[float]

    def line(self) -> str:
        return (
            f"runs fired: {self.fired} (slots due: {self.expected}), executed: {self.executed}, "
            f"duplicates: {self.duplicates}, missed: {self.missed}, "
            f"fire lateness p50/p99: {pct(self.fire_lateness_ms, 50):.0f}/{pct(self.fire_lateness_ms, 99):.0f} ms, "
            f"start lateness p50/p99: {pct(self.start_lateness_ms, 50):.0f}/{pct(self.start_lateness_ms, 99):.0f} ms"
        )


def drain(name: str, ledger: Path, timeout: float = 60.0) -> bool:
    """Disable the periodic task (as the admin does) and wait until every run it fired has executed."""
    PeriodicTask.objects.filter(name=name).update(enabled=False)
    time.sleep(1.0)  # a worker already past its query may still fire the slot it was on
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if figures(name, ledger).executed == PeriodicRun.objects.filter(periodic_task__name=name).count():
            return True
        time.sleep(0.2)
    return False


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def figures(name: str, ledger: Path) -> BeatFigures:
    """Measure the runs of interval task `name` against its schedule and the ledger of executions.

    expected: every slot from the first fired up to the row's next_run_at (exclusive); missed: the
    expected slots with no run; duplicates: executions beyond one per run (ledger lines per task id)
    plus task rows beyond one per slot.
    """
    row = PeriodicTask.objects.get(name=name)
    step = timedelta(seconds=row.interval)
    runs = list(PeriodicRun.objects.filter(periodic_task=row, manual=False).order_by("scheduled_for"))
    if not runs:
        return BeatFigures(0, 0, 0, 0, 0, [], [])
    first = runs[0].scheduled_for
    expected = int((row.next_run_at - first) / step)
    slots = {first + step * k for k in range(expected)}
    fired = {run.scheduled_for for run in runs}
    executions = Counter(line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("stamp "))
    rows = dict(TaskRecord.objects.filter(pk__in=[r.task_id for r in runs]).values_list("id", "started_at"))
    duplicates = sum(n - 1 for n in executions.values() if n > 1) + (len(runs) - len(fired))
    return BeatFigures(
        fired=len(runs),
        expected=expected,
        duplicates=duplicates,
        missed=len(slots - fired),
        executed=sum(executions[r.task_id] > 0 for r in runs),
        fire_lateness_ms=[(r.fired_at - r.scheduled_for).total_seconds() * 1000 for r in runs],
        start_lateness_ms=[
            (rows[r.task_id] - r.scheduled_for).total_seconds() * 1000 for r in runs if rows.get(r.task_id)
        ],
    )
