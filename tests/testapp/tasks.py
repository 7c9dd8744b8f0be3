"""Tasks the suite runs in real worker processes. The ledger records every execution."""

import os
import time

from djtasks import current_task, report_progress, task

from .models import Note


def ledger(entry: str) -> None:
    path = os.environ.get("DJTASKS_LEDGER")
    if path:
        with open(path, "a") as f:
            f.write(f"{entry}\n")


@task
def add(x, y):
    return x + y


@task(name="custom.name", queue="other", priority=10, ignore_result=False)
def renamed():
    return "renamed"


@task
def fail(message="boom"):
    raise ValueError(message)


@task
def record(key):
    ledger(f"{key} {os.getpid()}")
    return key


@task
def sleep_then_record(key, seconds):
    ledger(f"start {key} {os.getpid()}")
    time.sleep(seconds)
    ledger(f"end {key} {os.getpid()}")
    return key


@task(track_started=True)
def tracked_sleep(seconds):
    time.sleep(seconds)
    return seconds


@task
def unserializable():
    return {1, 2, 3}


@task
def note_length(note_id):
    return len(Note.objects.get(pk=note_id).text)


@task
def die(key):
    """Kill this worker child the first time it runs for `key`, succeed afterwards."""
    path = os.environ.get("DJTASKS_LEDGER", "") + f".{key}.died"
    if not os.path.exists(path):
        open(path, "w").close()
        os._exit(9)
    return "survived"


@task(ignore_result=True)
def quiet():
    return "not stored"


@task
def progressing(steps):
    for step in range(1, steps + 1):
        report_progress(step, steps, f"step {step}")
    running = current_task()
    return {"attempt": running.attempt, "id": running.id}


@task(soft_time_limit=0.5)
def soft_limited():
    from djtasks import SoftTimeLimitExceeded

    try:
        time.sleep(10)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "not interrupted"


@task(time_limit=1)
def hang(key):
    ledger(f"start {key} {os.getpid()}")
    while True:
        time.sleep(0.1)


_leak: list[bytes] = []


@task
def leak(key, mib):
    _leak.append(b"x" * (mib * 1024 * 1024))
    ledger(f"end {key} {os.getpid()}")
    return os.getpid()


@task
def always_die():
    os._exit(13)


@task
def pid():
    return os.getpid()


@task
def work(key, seconds=0.0):
    """The fault suite's task: the ledger gets a line when it starts and when it ends."""
    ledger(f"start {key} {os.getpid()} {time.time():.3f}")
    if seconds:
        time.sleep(seconds)
    ledger(f"end {key} {os.getpid()} {time.time():.3f}")
    return key


@task
def stamp():
    """Write this run's task id to the ledger: the periodic-task tests count executions per run."""
    ledger(f"stamp {current_task().id} {os.getpid()}")
