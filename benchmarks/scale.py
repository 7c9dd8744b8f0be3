"""The scale curve: drain throughput on PostgreSQL with 1, 2, 4 and 8 worker processes, and what each step costs.

    .venv/bin/python benchmarks/scale.py                  # 4,000 tasks per step, -c 1,2,4,8
    .venv/bin/python benchmarks/scale.py --size 1000 --procs 1,2 --pgbouncer

Runs in an interpreter that has djtasks' requirements and psutil (the project's .venv, or
benchmarks/.venvs/djtasks), against its own redis-server and a throwaway PostgreSQL cluster
(fsync on, pg_stat_statements loaded), with the benchmark's djtasks project (peers/djtasks, a
no-op task). Each step queues `--size` tasks with no worker, then times one `taskworker -c N`
from its start to the last row SUCCESS, and measures over that drain: the CPU each part used
(worker processes, PostgreSQL backends, redis-server, in cores of this machine), commits and
statements per task (pg_stat_database, pg_stat_statements; this script's own polling left out)
and Redis commands per task (INFO commandstats, which counts the commands scripts call too). The
bottleneck named is the part that used most of what it could: the machine's cores when they are
nearly all busy (saying so when most of that was other processes' load), else Redis (one core at
most) or PostgreSQL or the workers. The table goes to stdout and
benchmarks/results/scale-<stamp>.md. All processes run on this machine, on loopback: worker
hosts in network namespaces (tests/support/hosts.py) would share the same 2 cores and change
nothing this measures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import psutil  # noqa: E402
from budget import cpu_seconds  # noqa: E402
from driver import Worker, recreate_database  # noqa: E402
from services import PgBouncer, PostgresCluster, RedisServer, log  # noqa: E402

POLL_S = 0.2


def postgres_processes(cluster: PostgresCluster) -> list[psutil.Process]:
    """This cluster's postmaster and its children (backends, checkpointer, WAL writer): not other clusters'."""
    pid = int((cluster.dir / "data" / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children()]


class Step:
    """One drain with `procs` worker processes, and what it cost."""

    def __init__(self, options, redis_client, connection, adapter, cluster, redis_server):
        self.options, self.redis, self.connection, self.adapter = options, redis_client, connection, adapter
        self.cluster, self.redis_server = cluster, redis_server

    def counters(self) -> dict[str, float]:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            commits = cursor.fetchone()[0]
            cursor.execute(
                "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE dbid = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT ILIKE '%count(*)%' AND query NOT ILIKE '%pg_stat%'"
            )
            statements = cursor.fetchone()[0]
            cursor.execute(
                "SELECT query, calls FROM pg_stat_statements WHERE dbid = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT ILIKE '%count(*)%' AND query NOT ILIKE '%pg_stat%'"
            )
            self.by_query = dict(cursor.fetchall())
        stats = self.redis.info("commandstats")
        calls = sum(v["calls"] for k, v in stats.items() if k.split("_", 1)[1] not in {"info", "config"})
        cpu = self.redis.info("cpu")
        return {
            "commits": float(commits),
            "statements": float(statements),
            "redis_calls": float(calls),
            "redis_cpu": cpu["used_cpu_sys"] + cpu["used_cpu_user"],
            "pg_cpu": cpu_seconds(postgres_processes(self.cluster)),
        }

    def run(self, procs: int) -> dict[str, object]:
        size = self.options.size
        self.adapter.reset()
        self.redis.flushall()
        self.adapter.enqueue_bulk(size)
        argv = [sys.executable, "-m", "django", "taskworker", "-c", str(procs), "-l", "WARNING"]
        before, machine_before, polls = self.counters(), psutil.cpu_times(), 0
        queries_before = self.by_query
        start = time.perf_counter()
        worker = Worker(argv, Path(self.options.log_dir) / f"scale-{procs}.log")
        tree: list[psutil.Process] = [psutil.Process(worker.pid)]
        worker_cpu = 0.0
        try:
            while True:
                polls += 1
                if self.adapter.done_count() >= size:
                    break
                worker.check_alive()
                try:
                    tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
                    worker_cpu = max(worker_cpu, cpu_seconds(tree))
                except psutil.NoSuchProcess:
                    pass
                time.sleep(POLL_S)
            elapsed = time.perf_counter() - start
            worker_cpu = max(worker_cpu, cpu_seconds(tree))
            after, machine_after = self.counters(), psutil.cpu_times()
        finally:
            worker.stop()
        busy = sum(machine_after) - sum(machine_before)
        idle = (machine_after.idle + machine_after.iowait) - (machine_before.idle + machine_before.iowait)
        cores = os.cpu_count() or 1
        row = {
            "procs": procs,
            "drain_per_s": size / elapsed,
            "machine_busy": 1 - idle / busy if busy else 0.0,
            "worker_cores": worker_cpu / elapsed,
            "pg_cores": (after["pg_cpu"] - before["pg_cpu"]) / elapsed,
            "redis_cores": (after["redis_cpu"] - before["redis_cpu"]) / elapsed,
            # Each poll of done_count is one autocommit statement: left out.
            "commits_per_task": (after["commits"] - before["commits"] - polls) / size,
            "statements_per_task": (after["statements"] - before["statements"]) / size,
            "redis_calls_per_task": (after["redis_calls"] - before["redis_calls"]) / size,
            "commits_per_s": (after["commits"] - before["commits"] - polls) / elapsed,
        }
        row["bottleneck"] = bottleneck(row, cores)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT LEFT(reason, 160), COUNT(*) FROM djtasks_deadletter GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
            )
            row["dead_letters"] = cursor.fetchall()
        calls = {q: n - queries_before.get(q, 0) for q, n in self.by_query.items()}
        top = sorted(((n, q) for q, n in calls.items() if n > 0), reverse=True)[:6]
        row["top_statements"] = [(n / size, " ".join(q.split())[:100]) for n, q in top]
        return row


def bottleneck(row: dict, cores: int) -> str:
    ours = row["worker_cores"] + row["pg_cores"] + row["redis_cores"]
    if row["machine_busy"] >= 0.9:
        if ours < 0.75 * cores * row["machine_busy"]:
            return f"CPU: {cores} cores {row['machine_busy']:.0%} busy, {ours:.1f} of them ours (other load)"
        parts = {"workers": row["worker_cores"], "PostgreSQL": row["pg_cores"], "Redis": row["redis_cores"]}
        biggest = max(parts, key=parts.get)
        return f"CPU: {cores} cores {row['machine_busy']:.0%} busy (most: {biggest})"
    if row["redis_cores"] >= 0.9:
        return "Redis (one core)"
    if row["pg_cores"] >= row["worker_cores"]:
        return f"PostgreSQL ({row['commits_per_s']:.0f} commits/s, fsync on)"
    return "the workers (CPU left idle: waiting on round trips)"


def table(rows: list[dict], meta: str) -> str:
    lines = [
        "## djtasks scale curve",
        "",
        meta,
        "",
        "| worker processes | drain | machine CPU busy | cores: workers / PostgreSQL / Redis "
        "| commits per task | statements per task | Redis commands per task (inside scripts too) | bottleneck |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['procs']} | {r['drain_per_s']:.0f}/s | {r['machine_busy']:.0%} "
            f"| {r['worker_cores']:.2f} / {r['pg_cores']:.2f} / {r['redis_cores']:.2f} "
            f"| {r['commits_per_task']:.2f} | {r['statements_per_task']:.2f} | {r['redis_calls_per_task']:.2f} "
            f"| {r['bottleneck']} |"
        )
    for r in rows:
        lines += ["", f"Statements per task with -c {r['procs']}, most called first:", ""]
        lines += [f"- {per:.2f} `{query}`" for per, query in r["top_statements"]]
        if r["dead_letters"]:
            lines += ["", "Dead letters:", ""] + [f"- {count} `{reason}`" for reason, count in r["dead_letters"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4000, help="tasks per step")
    parser.add_argument("--procs", default="1,2,4,8", help="worker processes (-c) of each step")
    parser.add_argument("--pgbouncer", action="store_true", help="reach PostgreSQL through PgBouncer")
    parser.add_argument("--results", default=str(HERE / "results"))
    options = parser.parse_args(argv)
    steps = [int(p) for p in options.procs.split(",")]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    options.log_dir = str(HERE / ".work" / f"scale-{stamp}")
    Path(options.log_dir).mkdir(parents=True, exist_ok=True)
    redis_server = RedisServer()
    cluster = PostgresCluster("-c shared_preload_libraries=pg_stat_statements -c max_connections=200")
    bouncer = PgBouncer(cluster) if options.pgbouncer else None
    try:
        direct = cluster.url("bench_scale")
        os.environ.update(
            DJANGO_SETTINGS_MODULE="peers.djtasks.settings",
            BENCH_DB="postgres",
            BENCH_PG_URL=bouncer.url("bench_scale") if bouncer else direct,
            BENCH_PGBOUNCER="1" if bouncer else "",
            BENCH_REDIS_URL=redis_server.url,
            PYTHONPATH=f"{HERE}{os.pathsep}{HERE.parent}",
        )
        recreate_database(direct)
        import django
        import redis

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from peers.djtasks import adapter

        call_command("migrate", verbosity=0, interactive=False)
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        step = Step(options, redis.Redis.from_url(redis_server.url), connection, adapter, cluster, redis_server)
        rows = []
        for procs in steps:
            log(f"drain of {options.size} with -c {procs}")
            rows.append(step.run(procs))
            log(f"  {rows[-1]['drain_per_s']:.0f}/s; {rows[-1]['bottleneck']}")
        meta = (
            f"Command: `benchmarks/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
            f"{options.size} no-op tasks per step, one worker of N processes (+ parent); "
            f"{os.cpu_count()} CPUs, shared with whatever else ran; {cluster.version}"
            f"{' through PgBouncer' if bouncer else ''} (fsync on); {redis_server.version.split(' sha')[0]}."
        )
        text = table(rows, meta)
        print(text)
        results = Path(options.results)
        results.mkdir(parents=True, exist_ok=True)
        (results / f"scale-{stamp}.md").write_text(text)
        log(f"written {results / f'scale-{stamp}.md'}")
    finally:
        redis_server.stop()
        if bouncer:
            bouncer.stop()
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
