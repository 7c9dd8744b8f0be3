"""The per-task budget of each path: statements, commits, Redis commands and round trips, CPU time.

Counted, not sampled: PostgreSQL's pg_stat_statements (calls per statement) and the transaction
ids assigned (pg_current_snapshot's xmax: one per transaction that wrote, so one per commit that
must reach the disk; pg_stat_database lags up to 10 s behind idle backends), read through a
connection of their own to the `postgres` database, so the counting is not counted; Redis'
INFO commandstats (commands, those run by Lua scripts included) and INFO stats
total_reads_processed (the reads the server made: about one per round trip, a pipeline being
one) after CONFIG RESETSTAT; CPU time of the process
that enqueues (time.process_time) and of the worker (parent and children, psutil), and the wall
clock. For drain and round trip the worker is started first and warmed by one task; for drain
it is then stopped (SIGSTOP to its process group) while the queue is filled, so its start-up is
not in the figures. SQLite has no statement counters: there the statements of the enqueueing
process are counted with a Django execute_wrapper and the worker's are not (n/a).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from contextlib import ExitStack

# Counter queries of the driver that must not be counted (done_count's poll).
_OWN = ("count(*)", "pg_stat", "pg_catalog")


class Counters:
    def __init__(self, redis, db_label: str):
        self.redis = redis
        self.pg = None
        self.statements_ok = False
        if db_label == "postgres":
            self.pg = self._connect()
        self.local = Counter()

    def _connect(self):
        import psycopg

        url = os.environ.get("BENCH_PG_ADMIN_URL") or os.environ["BENCH_PG_URL"]  # not through PgBouncer
        self.dbname = url.rpartition("/")[2]
        conn = psycopg.connect(url.rpartition("/")[0] + "/postgres", autocommit=True)
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
            self.statements_ok = True
        except psycopg.Error:  # not in shared_preload_libraries (an external server): commits only
            pass
        return conn

    def _db_cpu(self) -> float:
        """CPU time of the database server: the postmaster and all its children (backends, WAL writer...)."""
        if self.pg is None:
            return 0.0
        import psutil

        backend = psutil.Process(int(self.pg.execute("SELECT pg_backend_pid()").fetchone()[0]))
        postmaster = backend.parent()
        return cpu_seconds([postmaster, *postmaster.children()])

    def _next_xid(self) -> int:
        return int(self.pg.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0])

    def start(self, *worker_pids: int) -> None:
        self.worker_pids = worker_pids
        if self.pg is not None:
            self.xid_before = self._next_xid()
            if self.statements_ok:
                self.pg.execute("SELECT pg_stat_statements_reset()")
        self.local.clear()
        self.redis.config_resetstat()
        self.cpu_before = (time.process_time(), _worker_cpu(worker_pids))
        self.db_cpu_before = self._db_cpu()
        self.wall_before = time.perf_counter()

    def stop(self, count: int, adapter=None) -> dict:
        wall = time.perf_counter() - self.wall_before
        cpu = (time.process_time() - self.cpu_before[0], _worker_cpu(self.worker_pids) - self.cpu_before[1])
        db_cpu = self._db_cpu() - self.db_cpu_before
        if hasattr(adapter, "settle"):  # a publish sent without waiting: count it once Redis has run it
            adapter.settle()
        commandstats = self.redis.info("commandstats")
        reads = self.redis.info("stats")["total_reads_processed"] - 2  # the two INFO calls
        commands = {k.removeprefix("cmdstat_"): v["calls"] for k, v in commandstats.items()}
        commands.pop("info", None)
        commands.pop("config|resetstat", None)
        figures = {
            "tasks": count,
            "wall_us": wall / count * 1e6,
            "caller_cpu_us": cpu[0] / count * 1e6,
            "worker_cpu_us": cpu[1] / count * 1e6 if self.worker_pids else None,
            "redis_commands": sum(commands.values()) / count,
            "redis_reads": reads / count,
            "redis_top": dict(Counter(commands).most_common()),
        }
        if self.pg is not None:
            figures["db_cpu_us"] = db_cpu / count * 1e6
            figures["commits"] = (self._next_xid() - self.xid_before) / count
        if self.statements_ok:
            rows = self.pg.execute(
                "SELECT s.query, s.calls, s.total_exec_time, s.total_plan_time"
                " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = %s ORDER BY s.calls DESC",
                [self.dbname],
            ).fetchall()
            counted = [(q, n) for q, n, _, _ in rows if not any(own in q.lower() for own in _OWN)]
            timed = [(q, n, e, pl) for q, n, e, pl in rows if not any(own in q.lower() for own in _OWN)]
            figures["exec_us"] = sum(e for _, _, e, _ in timed) * 1000 / count
            figures["plan_us"] = sum(pl for _, _, _, pl in timed) * 1000 / count
            figures["statements_time"] = {
                " ".join(q.split())[:90]: [n, round(e * 1000 / count, 1), round(pl * 1000 / count, 1)]
                for q, n, e, pl in sorted(timed, key=lambda t: -t[2])[:15]
            }
            figures["statements"] = sum(n for _, n in counted) / count
            figures["statements_top"] = {" ".join(q.split())[:120]: n for q, n in counted[:15]}
        elif self.pg is None:
            figures["statements"] = sum(self.local.values()) / count if not self.worker_pids else None
            figures["statements_caller"] = sum(self.local.values()) / count
            figures["statements_top"] = dict(self.local.most_common(15))
        return figures

    def wrapper(self, execute, sql, params, many, context):
        """A Django execute_wrapper counting the enqueueing process's statements (SQLite)."""
        if not any(own in sql.lower() for own in _OWN):
            self.local[" ".join(sql.split())[:120]] += len(params) if many and params is not None else 1
        return execute(sql, params, many, context)


def _worker_cpu(pids: tuple[int, ...]) -> float:
    import psutil

    parents = [psutil.Process(pid) for pid in pids]
    return cpu_seconds([process for parent in parents for process in [parent, *parent.children(recursive=True)]])


def cpu_seconds(processes: list) -> float:
    """User and system CPU of the processes that are still there."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def run(bench) -> dict:
    """Every path's budget for this system on this database (bench: driver.Bench)."""
    from django.db import connection

    counters = Counters(bench.redis, bench.db_label)
    size, trips = bench.size, bench.trips
    budget: dict[str, dict] = {}
    with ExitStack() as stack:
        if counters.pg is None:
            stack.enter_context(connection.execute_wrapper(counters.wrapper))
        bench.reset()
        counters.start()
        for i in range(size):
            bench.adapter.enqueue(i)
        budget["enqueue"] = counters.stop(size, bench.adapter)

        bench.reset()
        counters.start()
        bench.adapter.enqueue_bulk(size)
        budget["bulk"] = counters.stop(size, bench.adapter)

        bench.reset()
        worker = bench.start_worker("budget")
        try:
            bench.adapter.wait(bench.adapter.enqueue(-1), 120)
            for i in range(20):
                bench.adapter.wait(bench.adapter.enqueue(i), 30)
            counters.start(worker.pid)
            for i in range(trips):
                bench.adapter.wait(bench.adapter.enqueue(i), 30)
            budget["roundtrip"] = counters.stop(trips)

            done = bench.adapter.done_count()
            os.killpg(worker.pid, signal.SIGSTOP)
            try:
                bench.adapter.enqueue_bulk(size)
            finally:
                counters.start(worker.pid)
                os.killpg(worker.pid, signal.SIGCONT)
            bench.wait_done(worker, done + size, timeout=max(600.0, size / 10))
            budget["drain"] = counters.stop(size)
        finally:
            worker.stop()
    return {"budget": budget}
