"""The benchmark harness runs end to end for djtasks at a tiny size. It measures; it asserts no speed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = [
    "enqueue_per_s",
    "bulk_per_s",
    "drain_per_s",
    "rt_p50_ms",
    "rt_p95_ms",
    "rt_p99_ms",
    "rss_mib",
    "redis_bytes_per_task",
    "queued_rss_mib",
    "priority_start_ms",
]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_benchmark_harness_measures_every_workload_for_djtasks(tmp_path: Path):
    db = os.environ.get("DJTASKS_TEST_DB", "sqlite")
    argv = [
        sys.executable,
        str(ROOT / "benchmarks" / "run.py"),
        "--only",
        "djtasks",
        "--size",
        "50",
        "--runs",
        "1",
        "--db",
        db,
        "--djtasks-python",
        sys.executable,
        "--results",
        str(tmp_path),
        "--budget",
    ]
    if db == "postgres":
        argv += ["--postgres-url", os.environ["DATABASE_URL"]]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    [result] = tmp_path.glob("*.json")
    [row] = json.loads(result.read_text())["medians"]
    assert (row["peer"], row["db"]) == ("djtasks", db)
    assert all(row[name] > 0 for name in FIGURES), {name: row[name] for name in FIGURES}
    assert row["rt_p50_ms"] <= row["rt_p95_ms"] <= row["rt_p99_ms"]
    table = next(tmp_path.glob("*.md")).read_text()
    assert f"| djtasks ({db}) |" in table

    budget = json.loads(result.read_text())["runs"][0]["budget"]
    assert set(budget) == {"enqueue", "bulk", "drain", "roundtrip"}
    # Counted, not estimated: one call at a time is one INSERT (and on PostgreSQL one commit) and
    # one publish of 9 Redis commands (the arrival clock is a GET and a SET); a bulk block of 50 calls
    # is one statement and one publish.
    assert budget["enqueue"]["redis_commands"] == 9
    assert budget["bulk"]["redis_reads"] * 50 <= 2  # the whole block's publish: one round trip
    if db == "postgres":  # transaction ids are the cluster's: tests running beside this one add to them
        assert budget["enqueue"]["commits"] >= 1
        assert budget["roundtrip"]["commits"] >= 3
    else:
        assert budget["enqueue"]["statements"] == 1
        # BEGIN IMMEDIATE and INSERTs of 32, 16 and 2 rows (record/inserts.py: at most 64 rows, then powers of two)
        assert budget["bulk"]["statements"] == 4 / 50
    assert budget["drain"]["worker_cpu_us"] > 0
    assert "## Per-task budget" in table
