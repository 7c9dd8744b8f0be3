"""Run every workload once for one system on one database; write the figures as JSON.

Runs inside the system's own virtualenv, started by run.py with DJANGO_SETTINGS_MODULE set to
peers.<system>.settings and the harness's Redis and database in the environment (peers/common.py).

    python benchmarks/driver.py --peer djtasks --size 10000 --out figures.json [--profile DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER_START_TIMEOUT = 120.0
# A high-priority task that has not run this long after its publish is reported as "> 30 s".
PROBE_TIMEOUT = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--profile", help="directory for py-spy / cProfile output (djtasks)")
    parser.add_argument("--workloads", default="enqueue,bulk,drain,roundtrip,queued")
    options = parser.parse_args()

    if os.environ.get("BENCH_DB") == "postgres":
        recreate_database(os.environ.get("BENCH_PG_ADMIN_URL") or os.environ["BENCH_PG_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    bench = Bench(importlib.import_module(f"peers.{options.peer}.adapter"), options)
    figures: dict[str, object] = {
        "peer": options.peer,
        "results_in": bench.adapter.RESULTS_IN,
        "priority": bench.adapter.PRIORITY,
        "size": options.size,
    }
    workloads = options.workloads.split(",") + (["profile_run"] if options.profile else [])
    for workload in workloads:
        log(f"{options.peer}: {workload}")
        figures.update(getattr(bench, workload)())
    Path(options.out).write_text(json.dumps(figures, indent=2))


def recreate_database(url: str) -> None:
    """Drop and create the database named by the URL, so every run starts empty."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def log(message: str) -> None:
    print(f"[driver {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Worker:
    """The system's worker as a subprocess in its own session (so the whole group can be killed)."""

    def __init__(self, argv: list[str], log_path: Path):
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.process = subprocess.Popen(
            argv,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        """Resident memory of the worker: the parent and all its descendants, in bytes."""
        import psutil

        parent = psutil.Process(self.pid)
        total = 0
        for process in [parent, *parent.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("worker did not stop within 30 s of SIGTERM; killing its process group")
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.log_file.close()


class Bench:
    def __init__(self, adapter, options):
        import redis
        from peers.common import REDIS_URL

        self.adapter = adapter
        self.size = options.size
        self.trips = max(20, min(1000, options.size // 10))
        self.profile = Path(options.profile) if options.profile else None
        self.log_dir = Path(options.log_dir)
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.db_label = os.environ.get("BENCH_DB", "sqlite")

    def reset(self) -> None:
        self.adapter.reset()
        self.redis.flushall()

    def start_worker(self, name: str) -> Worker:
        return Worker(self.adapter.worker_argv(), self.log_dir / f"{self.adapter.NAME}-{self.db_label}-{name}.log")

    def wait_done(self, worker: Worker, count: int, timeout: float) -> float:
        """Poll until `count` results are stored; return the time it happened (perf_counter)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.adapter.done_count() >= count:
                return time.perf_counter()
            worker.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.adapter.done_count()} of {count} results after {timeout} s")
            time.sleep(0.02)

    # Workloads -------------------------------------------------------------------------------

    def enqueue(self) -> dict[str, float]:
        """Enqueue one call at a time in autocommit: each call is its own commit (or publish)."""
        self.reset()
        start = time.perf_counter()
        for i in range(self.size):
            self.adapter.enqueue(i)
        return {"enqueue_per_s": self.size / (time.perf_counter() - start)}

    def bulk(self) -> dict[str, float]:
        """Enqueue many at once: the system's best bulk mechanism."""
        self.reset()
        start = time.perf_counter()
        self.adapter.enqueue_bulk(self.size)
        return {"bulk_per_s": self.size / (time.perf_counter() - start)}

    def drain(self) -> dict[str, float]:
        """Queue `size` tasks with no worker; time from worker start to the last result stored."""
        self.reset()
        self.adapter.enqueue_bulk(self.size)
        start = time.perf_counter()
        worker = self.start_worker("drain")
        try:
            done = self.wait_done(worker, self.size, timeout=max(600.0, self.size / 10))
        finally:
            worker.stop()
        return {"drain_per_s": self.size / (done - start)}

    def roundtrip(self) -> dict[str, float]:
        """Enqueue one task and wait for its result, sequentially, with a warm worker; then its RSS."""
        self.reset()
        worker = self.start_worker("roundtrip")
        try:
            self.adapter.wait(self.adapter.enqueue(-1), WORKER_START_TIMEOUT)
            for i in range(20):
                self.adapter.wait(self.adapter.enqueue(i), 30)
            times = []
            for i in range(self.trips):
                start = time.perf_counter()
                result = self.adapter.wait(self.adapter.enqueue(i), 30)
                times.append(time.perf_counter() - start)
                assert result == i, (result, i)
            rss = worker.rss()
        finally:
            worker.stop()
        cuts = statistics.quantiles(times, n=100, method="inclusive")
        return {
            "rt_p50_ms": cuts[49] * 1000,
            "rt_p95_ms": cuts[94] * 1000,
            "rt_p99_ms": cuts[98] * 1000,
            "rt_count": self.trips,
            "rss_mib": rss / 2**20,
        }

    def queued(self) -> dict[str, float | None]:
        """Queue 10x size with no worker: Redis bytes per task; then the worker's RSS and priority latency."""
        self.reset()
        count = self.size * 10
        before = self.redis.info("memory")["used_memory"]
        for start in range(0, count, 10_000):
            self.adapter.enqueue_bulk(min(10_000, count - start), start)
        after = self.redis.info("memory")["used_memory"]
        figures: dict[str, float | None] = {"queued": count, "redis_bytes_per_task": (after - before) / count}
        worker = self.start_worker("queued")
        try:
            self.wait_done(worker, 1, WORKER_START_TIMEOUT)
            time.sleep(1.0)
            rss_early = worker.rss()
            time.sleep(4.0)
            rss_late = worker.rss()
            figures["queued_rss_mib"] = rss_late / 2**20
            figures["queued_rss_growth_mib"] = (rss_late - rss_early) / 2**20
            latencies = []
            if self.adapter.PRIORITY:
                for _ in range(5):
                    handle = self.adapter.send_latency_probe(time.time())
                    try:
                        latencies.append(self.adapter.wait(handle, PROBE_TIMEOUT) * 1000)
                    except Exception as exc:  # noqa: BLE001 - each system raises its own timeout
                        log(f"high-priority probe did not finish within {PROBE_TIMEOUT} s ({exc!r})")
                        latencies.append(float("inf"))
                        break
            figures["priority_start_ms"] = statistics.median(latencies) if latencies else None
            figures["still_queued_at_probe"] = count - self.adapter.done_count()
        finally:
            worker.stop()
        return figures

    # Profiling -------------------------------------------------------------------------------

    def profile_run(self) -> dict[str, float]:
        """Enqueue under cProfile, then drain under py-spy; separate from the measured runs, which stay unprofiled."""
        self.reset()
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(self.size):
            self.adapter.enqueue(i)
        profiler.disable()
        self.write_pstats(profiler, f"enqueue-{self.db_label}")
        self.reset()
        self.adapter.enqueue_bulk(self.size)
        worker = self.start_worker("profile")
        spy = self.start_py_spy(worker)
        try:
            self.wait_done(worker, self.size, timeout=max(600.0, self.size / 10))
        finally:
            worker.stop()
            spy.wait(timeout=120)
        return {}

    def start_py_spy(self, worker: Worker) -> subprocess.Popen:
        spy = Path(sys.executable).parent / "py-spy"
        out = self.profile / f"worker-{self.db_label}.txt"
        return subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(worker.pid),
                "--subprocesses",
                "--format",
                "raw",
                "--rate",
                "250",
                "--nonblocking",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_dir / "py-spy.log", "ab"),
        )

    def write_pstats(self, profiler: cProfile.Profile, name: str) -> None:
        profiler.dump_stats(self.profile / f"{name}.pstats")
        with open(self.profile / f"{name}.txt", "w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
