#!/usr/bin/env python3
"""The drain workload's worker start-up as a timeline: when each step of `taskworker` began and ended.

    benchmarks/startup.py                       # SQLite and PostgreSQL, 3 starts each, 2,000 queued tasks
    benchmarks/startup.py --db postgres --runs 5 --size 2000

As benchmarks/run's drain: `size` no-op tasks queued with no worker, then `taskworker -c 2` started
(through startprobe.py, which marks each step) and the clock stopped at the last result stored.
Prints each start's timeline in milliseconds from the command's start, and the median per event.
Starts its own redis-server and PostgreSQL cluster (services.py); runs djtasks from the worktree
with benchmarks/.venvs/djtasks (or --python).
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def outer(options: argparse.Namespace) -> int:
    from services import PostgresCluster, RedisServer, log

    redis = RedisServer()
    cluster = PostgresCluster() if options.db in ("postgres", "both") else None
    work = Path(tempfile.mkdtemp(prefix="djtasks-startup-"))
    try:
        for db in ["sqlite", "postgres"] if options.db == "both" else [options.db]:
            env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
            env.update(
                BENCH_REDIS_URL=redis.url,
                PYTHONPATH=f"{HERE}{os.pathsep}{HERE.parent}",
                DJANGO_SETTINGS_MODULE="peers.djtasks.settings",
                BENCH_DB=db,
                BENCH_SQLITE_PATH=str(work / "startup.sqlite3"),
            )
            if cluster:
                env["BENCH_PG_URL"] = cluster.url("bench_startup")
            log(f"{db}: {options.runs} start(s) with {options.size} tasks queued; load {os.getloadavg()}")
            argv = [options.python, __file__, "--inner", "--db", db, "--runs", str(options.runs)]
            argv += ["--statements"] if options.statements else []
            argv += ["--warm", str(options.warm), "--age", str(options.age)] + (["--plain"] if options.plain else [])
            subprocess.run([*argv, "--size", str(options.size), "--work", str(work)], check=True, env=env)
    finally:
        redis.stop()
        if cluster:
            cluster.stop()
        log(f"timelines and worker logs in {work}")
    return 0


def inner(options: argparse.Namespace) -> int:
    # As run.py: djtasks and the project compiled once (the harness runs with PYTHONDONTWRITEBYTECODE).
    for source in (HERE.parent / "djtasks", HERE / "peers"):
        compileall.compile_dir(str(source), quiet=1)
    if options.db == "postgres":
        from driver import recreate_database

        recreate_database(os.environ["BENCH_PG_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from peers.djtasks import adapter

    call_command("migrate", verbosity=0, interactive=False)
    if options.db == "postgres" and options.statements:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cursor.execute("SELECT pg_stat_statements_reset()")  # the first run lists its drain, not the migrations
    timelines: list[dict[str, float]] = []
    for run in range(options.runs):
        adapter.reset()
        import redis

        redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]).flushall()
        if not options.warm:
            adapter.enqueue_bulk(options.size)
            time.sleep(options.age)  # rows older than SWEEP_GRACE: the start-up sweep reads them all
        out = Path(options.work) / f"timeline-{options.db}-{run}.txt"
        out.unlink(missing_ok=True)
        entry = ["-m", "django"] if options.plain else [str(HERE / "startprobe.py")]
        argv = [sys.executable, *entry, "taskworker", "-c", "2", "-l", "WARNING"]
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        log_file = open(Path(options.work) / f"worker-{options.db}-{run}.log", "wb")
        began = time.time()
        process = subprocess.Popen(
            argv,
            env={**os.environ, "STARTPROBE_OUT": str(out)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        first_done = None
        if options.warm:  # as budget.py: started on an empty queue, stopped while the queue fills
            time.sleep(options.warm)
            os.killpg(process.pid, signal.SIGSTOP)
            adapter.enqueue_bulk(options.size)
            began = time.time()
            os.killpg(process.pid, signal.SIGCONT)
        while (count := adapter.done_count()) < options.size:
            if first_done is None and count:
                first_done = time.time()
            if process.poll() is not None:
                raise SystemExit(f"the worker exited with {process.returncode}")
            time.sleep(0.02)  # as driver.py polls
        ended = time.time()
        process.terminate()
        process.wait(30)
        log_file.close()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
        print(
            f"\nrun {run}: worker CPU {cpu * 1000:.0f} ms (parent and children, start to stop),"
            f" wall {(ended - began) * 1000:.0f} ms"
        )
        if options.db == "postgres" and options.statements:
            statements()  # with --plain too (it printed nothing there: the loop went on before it)
        if options.plain:
            continue
        timelines.append(report(out, began, first_done or ended, ended, run))
    if not timelines:
        return 0
    print(f"\nmedian of {len(timelines)} ({options.db}), ms from the command's start:")
    for event in timelines[0]:
        values = [t[event] for t in timelines if event in t]
        print(f"  {statistics.median(values):8.1f}  {event}")
    return 0


def statements() -> None:
    """The drain's statements by total time (pg_stat_statements), then reset."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT calls, round(total_exec_time::numeric, 1), round(total_plan_time::numeric, 1), rows,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements"
            " ORDER BY total_exec_time DESC LIMIT 12"
        )
        print("  calls  exec ms  plan ms  rows  statement")
        for row in cursor.fetchall():
            calls, exec_ms, plan_ms, rows, text = row
            print(f"  {calls:5d} {exec_ms:>8} {plan_ms:>8} {rows:5d}  {text}")
        cursor.execute("SELECT pg_stat_statements_reset()")


def report(path: Path, began: float, first_done: float, ended: float, run: int) -> dict[str, float]:
    """Print one start's timeline; return {event: ms since the command started}."""
    lines = [line.split(" ", 2) for line in path.read_text().splitlines()]
    parent = lines[0][1]
    children = list(dict.fromkeys(pid for _, pid, _ in lines if pid != parent))  # in order of appearance
    who = {parent: "parent", **{pid: f"child {i}" for i, pid in enumerate(children)}}
    events = sorted(
        [(float(t), f"{who[pid]}: {event}") for t, pid, event in lines]
        + [(first_done, "first result seen"), (ended, "last result seen")]
    )
    print(f"\nrun {run}: {(ended - began) * 1000:.0f} ms in all")
    timeline = {}
    for at, event in events:
        timeline.setdefault(event.partition(" [cpu")[0], (at - began) * 1000)
        print(f"  {(at - began) * 1000:8.1f}  {event}")
    return timeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument(
        "--warm", type=float, default=0, help="start the worker this many seconds before the queue fills"
    )
    parser.add_argument("--age", type=float, default=0, help="seconds between the enqueue and the worker's start")
    parser.add_argument("--plain", action="store_true", help="run the worker without startprobe.py (CPU and wall only)")
    parser.add_argument("--statements", action="store_true", help="PostgreSQL: the drain's statements by time")
    parser.add_argument("--python", default=str(HERE / ".venvs" / "djtasks" / "bin" / "python"))
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    options = parser.parse_args()
    return inner(options) if options.inner else outer(options)


if __name__ == "__main__":
    raise SystemExit(main())
