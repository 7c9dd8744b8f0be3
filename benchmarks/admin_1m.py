"""Time the task admin on 1,000,000 task rows: the list page (default, filtered, searched) and the dashboard.

    .venv/bin/python benchmarks/admin_1m.py                      # SQLite, var/bench-admin-1m.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/bench .venv/bin/python benchmarks/admin_1m.py

The rows are loaded once (the database is kept for the next run; --reload starts afresh) and spread
over 30 days: 40 task names, 4 queues, 8 workers, mostly successes. REDIS_URL may point at a running
Redis for the queue and worker parts; without one, the admin shows that Redis is unreachable.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
if os.environ.get("DATABASE_URL"):
    os.environ["DJTASKS_TEST_DB"] = "postgres"
else:
    os.environ.setdefault("DJTASKS_DB_NAME", str(ROOT / "var" / "bench-admin-1m.sqlite3"))

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from djtasks.models import TaskRecord  # noqa: E402

NAMES = [
    f"shop.tasks.{verb}_{noun}"
    for verb in ("send", "sync", "build", "charge", "resize")
    for noun in ("email", "invoice", "report", "image", "order", "cart", "feed", "index")
]
QUEUES = ["default", "mail", "reports", "images"]
WORKERS = [f"djtasks@web-{i}.{1000 + i}" for i in range(8)]
STATES = ["SUCCESS"] * 90 + ["FAILURE"] * 5 + ["PENDING"] * 2 + ["REVOKED", "RETRY", "STARTED"]


COLUMNS = (
    "id",
    "task_name",
    "queue",
    "priority",
    "backend",
    "state",
    "args",
    "kwargs",
    "result",
    "ignore_result",
    "exception_type",
    "exception_message",
    "traceback",
    "errors",
    "progress",
    "enqueued_at",
    "eta",
    "started_at",
    "finished_at",
    "attempts",
    "worker",
    "worker_ids",
    "lease_token",
    "lease_expires_at",
    "parent_id",
    "root_id",
    "group_id",
)
JSON_COLUMNS = {"args", "kwargs", "result", "errors", "progress", "worker_ids"}


def rows(count: int, rng: random.Random, stamp):
    """Yield row tuples in COLUMNS order, ready for executemany (the ORM is 50x slower at this)."""
    now = timezone.now()
    for _ in range(count):
        enqueued = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        state = rng.choice(STATES)
        started = finished = None
        if state != "PENDING":
            started = enqueued + timedelta(seconds=rng.expovariate(1 / 2))
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            finished = started + timedelta(seconds=rng.lognormvariate(-1, 1.2))
        failed = state == "FAILURE"
        worker = rng.choice(WORKERS) if started else ""
        yield (
            str(uuid.uuid4()),
            rng.choice(NAMES),
            rng.choice(QUEUES),
            0,
            "default",
            state,
            f"[{rng.randrange(10**6)}]",
            f'{{"user_id": {rng.randrange(10**5)}, "token": "{uuid.uuid4().hex[:12]}"}}',
            "null" if failed or finished is None else f'{{"ok": true, "n": {rng.randrange(100)}}}',
            False,
            "builtins.ValueError" if failed else "",
            "boom" if failed else "",
            "",
            "[]",
            "null",
            stamp(enqueued),
            None,
            stamp(started),
            stamp(finished),
            1 if started else 0,
            worker,
            f'["{worker}"]' if worker else "[]",
            "",
            None,
            "",
            "",
            "",
        )


def load(count: int) -> None:
    rng = random.Random(5)
    quote = connection.ops.quote_name
    if connection.vendor == "sqlite":

        def stamp(value):  # Django keeps aware datetimes in SQLite as naive UTC text
            return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    else:

        def stamp(value):
            return value

    marks = ", ".join("%s::jsonb" if c in JSON_COLUMNS and connection.vendor == "postgresql" else "%s" for c in COLUMNS)
    sql = f"INSERT INTO {quote(TaskRecord._meta.db_table)} ({', '.join(map(quote, COLUMNS))}) VALUES ({marks})"
    started = time.perf_counter()
    generated = rows(count, rng, stamp)
    done = 0
    while done < count:
        batch = list(itertools.islice(generated, 50_000))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
        done += len(batch)
        print(f"  loaded {done:,} rows", end="\r", flush=True)
    # What autovacuum does to a table that has been around: statistics, and on PostgreSQL the visibility
    # map that lets COUNT(*) use an index-only scan.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(f"  loaded {count:,} rows in {time.perf_counter() - started:.0f} s")


def timed(client: Client, url: str, runs: int) -> tuple[float, float]:
    client.get(url)  # warm caches and the template loader
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - begin)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reload", action="store_true", help="delete every task row and load afresh")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    if options.reload:
        TaskRecord.objects.all().delete()
    have = TaskRecord.objects.count()
    if have < options.rows:
        print(f"{connection.vendor}: {have:,} rows; loading {options.rows - have:,}")
        load(options.rows - have)
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="x")
    client = Client()
    client.force_login(user)
    total = TaskRecord.objects.count()
    some_id = TaskRecord.objects.filter(state="FAILURE").values_list("id", flat=True)[min(5000, total // 40)]
    pages = {
        "list (default)": "/admin/djtasks/taskrecord/",
        "list, page 100": "/admin/djtasks/taskrecord/?p=100",
        "list by state=FAILURE": "/admin/djtasks/taskrecord/?state__exact=FAILURE",
        "list by task name": f"/admin/djtasks/taskrecord/?task_name={NAMES[3]}",
        "list by name+state": f"/admin/djtasks/taskrecord/?task_name={NAMES[3]}&state__exact=FAILURE",
        "list by queue": "/admin/djtasks/taskrecord/?queue=mail",
        "list search by id": f"/admin/djtasks/taskrecord/?q={some_id}",
        "list search text (scan)": "/admin/djtasks/taskrecord/?q=charge_cart",
        "detail": f"/admin/djtasks/taskrecord/{some_id}/change/",
        "dashboard": "/admin/djtasks/dashboard/",
    }
    print(f"{connection.vendor} ({connection.settings_dict['NAME']}), {total:,} rows, median/max of {options.runs}:")
    for label, url in pages.items():
        median, worst = timed(client, url, options.runs)
        print(f"  {label:24} {median * 1000:8.0f} ms  (max {worst * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
