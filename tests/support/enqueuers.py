"""Enqueue from other processes at one instant: `python -m tests.support.enqueuers CALL THREADS START_AT`.

Each of THREADS threads (each with its own database connection) waits until START_AT (time.time())
and makes the call CALL names (see CALLS), then the process prints one JSON line per thread:
{"id": the id returned} or {"error": "..."}. Run with the environment of a worker subprocess
(tests/support/workers.py), so it uses the test database and the suite's Redis.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def calls() -> dict[str, Callable[[], Any]]:
    from tests.testapp import gated_tasks

    return {
        "invoice": lambda: gated_tasks.unique_work.apply_async(("invoice",), unique_key="invoice:42", unique_for=60),
        "arguments": lambda: gated_tasks.unique_work.delay("same-arguments"),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connection

    from djtasks import publisher

    name, threads, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    call = calls()[name]
    results: list[dict[str, str]] = []

    def one() -> None:
        try:
            connection.ensure_connection()  # connect before the instant, so all threads call at once
            time.sleep(max(0.0, start_at - time.time()))
            results.append({"id": call().id})
        except Exception as exc:  # reported to the test, which fails on it
            results.append({"error": f"{type(exc).__name__}: {exc}"})
        finally:
            publisher.flush()  # this thread's publishes, sent without waiting
            connection.close()

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
