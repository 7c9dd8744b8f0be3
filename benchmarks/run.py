"""Benchmark djtasks against Celery and Huey in the same run, on the same Redis and database.

    benchmarks/run                               all systems, SQLite and PostgreSQL, medians of 3 runs
    benchmarks/run --runs 1 --db postgres --only djtasks,huey
    benchmarks/run --size 500                    everything scaled down (10,000 tasks by default)
    benchmarks/run --db postgres --pgbouncer     PostgreSQL reached through PgBouncer (transaction pooling)
    benchmarks/run --profile                     also profile djtasks (py-spy of the worker, cProfile of enqueue)

Each system runs in its own virtualenv (benchmarks/.venvs/<name>, from requirements-<name>.txt)
through benchmarks/driver.py; the figures land in benchmarks/results/<stamp>.json and .md.
Standard library only: this file runs before the virtualenvs exist.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from services import HERE, PgBouncer, PostgresCluster, RedisServer, ensure_venv, log  # noqa: E402

# System -> the virtualenv it runs in. Order is the table's order.
SYSTEMS = {"djtasks": "djtasks", "celery_db": "celery", "celery_redis": "celery", "huey": "huey"}
# Systems that keep results in Redis: the database does not matter to them, so they run once.
REDIS_ONLY = {"celery_redis", "huey"}
WORK = HERE / ".work"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per system and database; the median is reported")
    parser.add_argument(
        "--size",
        type=int,
        default=10_000,
        help="tasks per workload (round trips: size/10 up to 1,000; queued: 10x size)",
    )
    parser.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile djtasks: py-spy on the worker during drain, cProfile around the enqueue loop",
    )
    parser.add_argument(
        "--postgres-url",
        help="use this server (postgres://user@host:port/anything) instead of "
        "starting a throwaway cluster; databases bench_<system> are dropped and created on it",
    )
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="reach the throwaway PostgreSQL through PgBouncer in transaction pooling mode "
        "(server-side cursors off; databases are still made directly)",
    )
    parser.add_argument(
        "--djtasks-python",
        help="run djtasks with this interpreter instead of .venvs/djtasks "
        "(it needs requirements.txt and psutil; the smoke test passes its own)",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter the virtualenvs are made from")
    parser.add_argument("--results", default=str(HERE / "results"), help="directory for the JSON and markdown")
    parser.add_argument(
        "--assemble",
        metavar="WORK_DIR",
        help="run nothing: build the table from the figures an interrupted run left in benchmarks/.work/<stamp>/",
    )
    options = parser.parse_args(argv)
    options.systems = [s.strip() for s in options.only.split(",") if s.strip()]
    unknown = sorted(set(options.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    options.systems = [s for s in SYSTEMS if s in options.systems]
    options.dbs = ["sqlite", "postgres"] if options.db == "both" else [options.db]
    if options.pgbouncer and (options.postgres_url or "postgres" not in options.dbs):
        parser.error("--pgbouncer needs the throwaway cluster: --db postgres or both, without --postgres-url")
    if options.runs < 1 or options.size < 10:
        parser.error("--runs must be at least 1 and --size at least 10")
    return options


def shown_args(argv: list[str]) -> list[str]:
    """The command line as typed: without the --python that benchmarks/run adds."""
    shown, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--python="):
            skip = False
            continue
        if arg == "--python":
            skip = True
            continue
        shown.append(arg)
    return shown


def interpreters(options: argparse.Namespace) -> dict[str, str]:
    found = {}
    for system in options.systems:
        if system == "djtasks" and options.djtasks_python:
            found[system] = options.djtasks_python
        else:
            found[system] = str(ensure_venv(SYSTEMS[system], options.python))
    return found


def run_driver(
    system: str, python: str, db: str, env: dict[str, str], options: argparse.Namespace, run: int, stamp_dir: Path
) -> dict:
    out = stamp_dir / f"{system}-{db}-{run}.json"
    argv = [
        python,
        str(HERE / "driver.py"),
        "--peer",
        system,
        "--size",
        str(options.size),
        "--out",
        str(out),
        "--log-dir",
        str(stamp_dir),
    ]
    if options.profile and system == "djtasks":
        argv += ["--profile", str(stamp_dir)]
    log(f"run {run}/{options.runs}: {system} on {db}")
    started = time.monotonic()
    subprocess.run(argv, check=True, env=env, cwd=HERE)
    log(f"  {system} on {db} took {time.monotonic() - started:.0f} s")
    return json.loads(out.read_text())


def meta_now(options, argv, stamp, redis, cluster) -> dict:
    return {
        "stamp": stamp,
        "command": " ".join(["benchmarks/run", *shown_args(argv if argv is not None else sys.argv[1:])]),
        "runs": options.runs,
        "size": options.size,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "redis": redis.version,
        "postgres": cluster.version + (" through PgBouncer" if options.pgbouncer else "")
        if cluster
        else (options.postgres_url and "external"),
    }


def write_results(raw: list[dict], meta: dict, options: argparse.Namespace, stamp_dir: Path) -> None:
    summary = report.summarise(raw, options.dbs)
    table = report.markdown(summary, options.dbs, meta)
    if options.profile:
        table += report.profile_summary(stamp_dir)
    print(table)
    results = Path(options.results)
    results.mkdir(parents=True, exist_ok=True)
    stamp = meta["stamp"]
    (results / f"{stamp}.json").write_text(json.dumps({"meta": meta, "medians": summary, "runs": raw}, indent=2))
    (results / f"{stamp}.md").write_text(table)
    log(f"written {results / stamp}.json and .md; logs and profiles in {stamp_dir}")


def assemble(options: argparse.Namespace) -> int:
    """Build the results of an interrupted run from the figures its drivers wrote."""
    stamp_dir = Path(options.assemble)
    meta = json.loads((stamp_dir / "meta.json").read_text())
    raw = []
    for path in sorted(stamp_dir.glob("*-*-*.json")):
        system, db, run = path.stem.rsplit("-", 2)
        figures = json.loads(path.read_text())
        figures.update(db="redis" if system in REDIS_ONLY else db, run=int(run))
        raw.append(figures)
    done = sorted({f"{f['peer']} on {f['db']}" for f in raw})
    meta["command"] += f" (assembled from the figures of: {', '.join(done)})"
    options.dbs = [db for db in ["sqlite", "postgres"] if any(f["db"] == db for f in raw)]
    options.profile = any(stamp_dir.glob("worker-*.txt"))
    write_results(raw, meta, options, stamp_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.assemble:
        return assemble(options)
    pythons = interpreters(options)
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:  # two runs started in the same second get their own directories
        try:
            (WORK / stamp).mkdir()
            break
        except FileExistsError:
            stamp += "x"
    stamp_dir = WORK / stamp
    redis = RedisServer()
    cluster = None
    bouncer = None
    try:
        log(f"{redis.version} on port {redis.port}")
        if "postgres" in options.dbs and not options.postgres_url:
            cluster = PostgresCluster()
            log(f"{cluster.version} on port {cluster.port} (fsync on)")
            if options.pgbouncer:
                bouncer = PgBouncer(cluster)
                log(f"{bouncer.version} on port {bouncer.port}, transaction pooling")
        base_env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
        base_env.update(
            BENCH_REDIS_URL=redis.url, PYTHONPATH=f"{HERE}{os.pathsep}{HERE.parent}", PYTHONDONTWRITEBYTECODE="1"
        )
        raw: list[dict] = []
        for run in range(1, options.runs + 1):
            for db in options.dbs:
                for system in options.systems:
                    if system in REDIS_ONLY and db != options.dbs[0]:
                        continue
                    env = {**base_env, "DJANGO_SETTINGS_MODULE": f"peers.{system}.settings", "BENCH_DB": db}
                    if db == "sqlite":
                        path = stamp_dir / f"{system}.sqlite3"
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{path}{suffix}").unlink(missing_ok=True)
                        env["BENCH_SQLITE_PATH"] = str(path)
                    else:
                        url = cluster.url(f"bench_{system}") if cluster else options.postgres_url
                        env["BENCH_PG_URL"] = url.rpartition("/")[0] + f"/bench_{system}"
                        if bouncer:
                            env["BENCH_PG_ADMIN_URL"] = env["BENCH_PG_URL"]
                            env["BENCH_PG_URL"] = bouncer.url(f"bench_{system}")
                            env["BENCH_PGBOUNCER"] = "1"
                    (stamp_dir / "meta.json").write_text(json.dumps(meta_now(options, argv, stamp, redis, cluster)))
                    figures = run_driver(system, pythons[system], db, env, options, run, stamp_dir)
                    figures.update(db="redis" if system in REDIS_ONLY else db, run=run)
                    raw.append(figures)
    finally:
        redis.stop()
        if bouncer:
            bouncer.stop()
        if cluster:
            cluster.stop()
    write_results(raw, meta_now(options, argv, stamp, redis, cluster), options, stamp_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
