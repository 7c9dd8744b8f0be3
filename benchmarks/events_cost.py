"""What task events and metrics counters cost.

    .venv/bin/python benchmarks/events_cost.py [TASKS] [ROUNDS]

1. The ack pipeline alone, in this process against a real redis-server: acking a batch of 8
   outcomes with and without their 24 events and their counters (interleaved, best of 5).
2. Worker throughput with ENABLE_EVENTS on and off: each round starts one worker (-c 2),
   enqueues TASKS `add` tasks in one transaction and times until every row is SUCCESS; rounds
   alternate so machine noise hits both alike. Counters are written either way.
"""

from __future__ import annotations

import statistics
import sys
import time

from harness import Installation


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with Installation() as site:
        from django.db import transaction

        from djtasks.models import TaskRecord
        from tests.testapp.tasks import add

        pipeline_cost()

        timings: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(rounds * 2):
            mode = "on" if round_ % 2 == 0 else "off"
            worker = site.worker("-c", "2", env={"DJTASKS_ENABLE_EVENTS": "1" if mode == "on" else "0"})
            add.delay(0, 0).get(timeout=60)  # the worker is up
            TaskRecord.objects.all().delete()
            began = time.monotonic()
            with transaction.atomic():
                for i in range(tasks):
                    add.delay(i, i)
            while TaskRecord.objects.filter(state="SUCCESS").count() < tasks:
                time.sleep(0.05)
            timings[mode].append(time.monotonic() - began)
            worker.terminate()
            worker.wait(timeout=60)
            print(f"round {round_ + 1}: events {mode:<3} {tasks / timings[mode][-1]:7.0f} tasks/s", flush=True)
        xlen = site.redis.client().xlen("{djtasks-test}:events")
        for mode, values in timings.items():
            best = min(values)
            print(
                f"events {mode:<3}: best {tasks / best:6.0f} tasks/s, median {tasks / statistics.median(values):6.0f}"
                f" tasks/s ({best * 1e6 / tasks:.0f} us/task at best)"
            )
        on, off = min(timings["on"]), min(timings["off"])
        print(
            f"cost of events: {(on - off) * 1e6 / tasks:+.0f} us per task ({(on / off - 1) * 100:+.1f}%); "
            f"stream length now {xlen}"
        )


def pipeline_cost(batches: int = 500, batch: int = 8) -> None:
    import uuid

    from djtasks.core.conf import get_settings
    from djtasks.transport.broker import Claim, get_broker
    from djtasks.transport.telemetry import Recorder

    broker = get_broker()
    recorder = Recorder(broker, get_settings(), "djtasks@bench.1")
    claims = [
        Claim(id=uuid.uuid4().hex, envelope=b"{}", deliveries=1, token="t", queue="default") for _ in range(batch)
    ]

    def fill() -> None:
        for claim in claims:
            for kind in ("task-received", "task-started", "task-succeeded"):
                recorder.event(kind, id=claim.id, name="myapp.tasks.add", queue="default", attempt=1, runtime=0.001)
            recorder.done[("myapp.tasks.add", "default", "SUCCESS")] += 1
            recorder.runtime.observe("myapp.tasks.add", 0.001)
            recorder.wait.observe("myapp.tasks.add", 0.004)

    best = {"plain": float("inf"), "with events and counters": float("inf")}
    for _ in range(5):
        for label in best:
            began = time.perf_counter()
            for _ in range(batches):
                if label == "plain":
                    broker.ack_many(claims)
                else:
                    fill()
                    broker.ack_many(claims, also=recorder.drain())
            best[label] = min(best[label], (time.perf_counter() - began) / (batches * batch))
    for label, seconds in best.items():
        print(f"ack pipeline, {label:<24}: {seconds * 1e6:6.1f} us per task (batches of {batch})")
    print(
        f"events and counters add {(best['with events and counters'] - best['plain']) * 1e6:.1f} us per task"
        " to the ack round trip",
        flush=True,
    )


if __name__ == "__main__":
    main()
