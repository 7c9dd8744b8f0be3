"""Three taskworkers run the beat over N ticks of a 1-second schedule; print fired, duplicates, missed, lateness.

    .venv/bin/python benchmarks/beat_200.py              # 200 ticks, about 3.5 minutes
    .venv/bin/python benchmarks/beat_200.py --ticks 20

It starts its own redis-server on a free loopback port, a throwaway SQLite database (the
embedded default, the harder case for several writers), and three `manage.py taskworker -c 1`
processes whose BEAT_SCHEDULE holds one entry: tests.testapp.tasks.stamp every 1.0 s. The task
writes its id to a ledger file, so executions are counted from outside the database.

At the end it disables the task (as the admin would) and waits for the fired runs to execute.
Figures: runs fired (PeriodicRun rows) against slots due (from the first slot fired to the
row's next_run_at); duplicates (executions beyond one per run, from the ledger); missed (due
slots with no run); fire lateness (run row written - scheduled time) and start lateness (task
started - scheduled time), p50/p99.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200, help="slots of the 1-second schedule to wait for")
    parser.add_argument("--workers", type=int, default=3)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="djtasks-beat-bench-"))
    ledger = work / "ledger.txt"
    ledger.touch()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DJTASKS_DB_NAME=str(work / "bench.sqlite3"),
        DJTASKS_LEDGER=str(ledger),
        DJTASKS_TEST_RUN=f"beat-bench-{os.getpid()}",
        DJTASKS_TEST_BEAT=json.dumps({"tick": {"task": "tests.testapp.tasks.stamp", "schedule": 1.0}}),
    )
    os.environ.pop("DJTASKS_TEST_DB", None)
    from tests.support.redisserver import RedisServer

    redis_server = RedisServer()
    redis_server.start()
    os.environ["REDIS_URL"] = redis_server.url

    import django

    django.setup()
    from django.core.management import call_command

    from djtasks.models import PeriodicRun
    from tests.support.beatstats import drain, figures
    from tests.support.workers import WorkerProcess

    call_command("migrate", verbosity=0)
    workers = []
    try:
        started = time.monotonic()
        workers = [WorkerProcess(redis_server.url, work, "-c", "1").start() for _ in range(options.workers)]
        while PeriodicRun.objects.count() < options.ticks:
            time.sleep(1)
            if time.monotonic() - started > options.ticks * 3 + 60:
                print("gave up waiting: the workers fired too few runs", file=sys.stderr)
                break
        elapsed = time.monotonic() - started
        drained = drain("tick", ledger)  # disable the task, let the fired runs execute
        for process in workers:
            process.stop()
        if not drained:
            print("some fired runs did not execute within 60 s", file=sys.stderr)
        result = figures("tick", ledger)
        by_worker: dict[str, int] = {}
        for name in PeriodicRun.objects.values_list("worker", flat=True):
            by_worker[name] = by_worker.get(name, 0) + 1
        print(f"{options.workers} workers, 1-second schedule, {elapsed:.0f} s, SQLite")
        print(result.line())
        print("runs fired per worker:", ", ".join(f"{w}: {n}" for w, n in sorted(by_worker.items())))
        return 0 if result.duplicates == 0 and result.missed == 0 else 1
    finally:
        for process in workers:
            process.stop()
        redis_server.stop()
        redis_server.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
