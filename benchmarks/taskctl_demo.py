"""Start two workers and run every taskctl command against them, printing each command and its output.

.venv/bin/python benchmarks/taskctl_demo.py
"""

from __future__ import annotations

import time

from harness import Installation


def main() -> None:
    with Installation() as site:
        first, second = (
            site.worker("-c", "2", "-n", "w1@%h"),
            site.worker("-c", "2", "-n", "w2@%h", "-Q", "default,hipri"),
        )
        from django.db import transaction

        from djtasks import control
        from djtasks.worker.naming import node_name
        from tests.testapp.tasks import add, sleep_then_record

        ids = [node_name("w1@%h"), node_name("w2@%h")]
        deadline = time.monotonic() + 60
        while set(control.workers()) != set(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        add.apply_async((1, 2), countdown=600)
        with transaction.atomic():
            long = [sleep_then_record.delay(f"long-{i}", 600) for i in range(4)]
            for i in range(12):
                add.delay(i, i)
        time.sleep(2)

        def run(*args: str) -> None:
            print(f"$ python manage.py taskctl {' '.join(args)}")
            out = site.manage("taskctl", *args, check=False)
            print((out.stdout + out.stderr).rstrip() or "(no output)")
            print()

        run("status")
        run("ping")
        for what in ("active", "reserved", "scheduled", "registered", "stats", "queues"):
            run("inspect", what)
        run("revoke", long[0].id, long[1].id, "--terminate")
        run("rate_limit", "tests.testapp.tasks.add", "100/s")
        run("time_limit", "tests.testapp.tasks.sleep_then_record", "20", "30")
        run("add_consumer", "reports")
        run("inspect", "queues")
        run("cancel_consumer", "reports")
        run("pool_grow", "2", "--destination", ids[0])
        run("pool_shrink", "1", "--destination", ids[0])
        run("inspect", "stats", "--destination", ids[0])
        run("ping", "--destination", f"{ids[0]},djtasks@gone.1", "--timeout", "1")
        run("ping", "--json", "--destination", ids[1])
        run("shutdown", "--destination", ids[0])
        first.wait(timeout=60)
        run("status")
        run("revoke", long[2].id, long[3].id)
        run("shutdown")
        second.wait(timeout=90)
        run("status")


if __name__ == "__main__":
    main()
