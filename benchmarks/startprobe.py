"""Run `manage.py taskworker` with timestamps at each step of its start-up (benchmarks/startup.py runs it).

    STARTPROBE_OUT=timeline.txt python benchmarks/startprobe.py taskworker -c 2 -l WARNING

Each line of STARTPROBE_OUT is `<time.time()> <pid> <event>`: the parent's steps (Django's set-up,
the system checks, the worker's own checks, each fork, the sweeps) and each child's (its first
claims, starts and outcomes), with the process's CPU so far; when a child or the parent's loop
ends, the totals of every wrapped call (calls, wall time, items). The wrappers only time the calls;
what runs is unchanged. Also:

    STARTPROBE_EVERY=16     mark every 16th batch start of each child as well
    STARTPROBE_PROFILE=f    cProfile the parent from its start to its first fork, into f
    STARTPROBE_NOGC=1       start with the cyclic collector off (an experiment: children inherit it)
"""

from __future__ import annotations

import time

BEGAN = time.time()

import functools  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

OUT = os.environ.get("STARTPROBE_OUT", "startprobe.txt")
COUNTS: dict[str, int] = {}
TOTALS: dict[str, list[float]] = {}  # label: [calls, wall s, items] of every call in this process


def mark(event: str, at: float | None = None) -> None:
    with open(OUT, "a") as out:
        cpu = time.process_time() * 1000  # this process's CPU so far (ms), beside the wall clock
        out.write(f"{time.time() if at is None else at:.6f} {os.getpid()} {event} [cpu {cpu:.0f} ms]\n")


def totals() -> None:
    for label, (calls, wall, items) in sorted(TOTALS.items()):
        mark(f"total {label}: {calls:.0f} calls, {wall * 1000:.1f} ms, {items:.0f} items")
    TOTALS.clear()


def timed(owner: object, name: str, label: str, times: int = 1, last: bool = False, every: int = 0) -> None:
    """Mark the first `times` calls of owner.name (per process): when each began and ended; total the rest."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: object, **kwargs: object) -> object:
        key = f"{os.getpid()} {label}"
        COUNTS[key] = n = COUNTS.get(key, 0) + 1
        began = time.perf_counter()
        if label == "child" and n == 1:
            TOTALS.clear()  # a forked child starts its own totals
        if n <= times or (every and n % every == 0):
            mark(f"{label}#{n} begin")
        try:
            result = original(*args, **kwargs)
        finally:
            total = TOTALS.setdefault(label, [0, 0.0, 0])
            total[0] += 1
            total[1] += time.perf_counter() - began
            if n <= times:
                mark(f"{label}#{n} end")
            if last:
                totals()
        total[2] += len(getattr(result, "claims", None) or (result if isinstance(result, list) else []))
        return result

    setattr(owner, name, wrapper)


def after_setup() -> None:
    from django.core.management.base import BaseCommand
    from django.db.backends.base.base import BaseDatabaseWrapper

    from djtasks.record import sql, transitions
    from djtasks.worker import child, duties, maintenance, pools, recording, start, startup, supervisor

    timed(BaseCommand, "check", "system checks")
    timed(supervisor.Worker, "__init__", "Worker()")
    timed(startup, "check_database", "check_database")
    timed(startup, "wait_for_redis", "wait_for_redis")
    timed(startup, "claim_name", "claim_name")
    timed(pools.Pool, "spawn", "spawn", times=4)
    timed(pools, "run_forked", "child", times=1, last=True)
    timed(child.Child, "__init__", "Child()")
    timed(recording.Recording, "claim", "claim", times=3)  # an idle child's wait for work is inside its claim
    timed(start.Starter, "start", "start", times=3, every=int(os.environ.get("STARTPROBE_EVERY", "0")))
    timed(recording.Recording, "write", "write outcomes", times=2)
    timed(recording.Recording, "finish", "finish")
    timed(child.Child, "_execute", "execute")
    timed(BaseDatabaseWrapper, "_commit", "commit")
    timed(sql, "read_rows", "read rows")
    timed(transitions, "write_claimed", "write claimed")
    timed(recording.Recording, "after", "after outcomes")
    timed(recording.Recording, "settle", "settle")
    timed(duties.Duties, "run", "duties")
    timed(duties.Duties, "_control", "control")
    timed(duties.Duties, "_heartbeat", "heartbeat")
    timed(duties.Duties, "_extend_leases", "extend leases")
    timed(duties.Beat, "tick", "beat tick", times=2)
    timed(supervisor.Worker, "collect", "collect reports")
    timed(supervisor.Worker, "_supervise", "supervise")
    timed(duties.Duties, "_sweep", "sweep", times=3)
    timed(maintenance, "sweep_rows", "sweep_rows", times=3)
    timed(supervisor.Worker, "_loop", "supervisor loop", last=True)


PROFILER: list[object] = []


def profile_until_fork() -> None:
    """STARTPROBE_PROFILE=file: cProfile the parent from its start to its first fork."""
    from djtasks.worker import pools

    spawn = pools.Pool.spawn

    def first_spawn(self: object, *args: object) -> object:
        if PROFILER:
            profiler = PROFILER.pop()
            profiler.disable()  # type: ignore[attr-defined]
            profiler.dump_stats(os.environ["STARTPROBE_PROFILE"])  # type: ignore[attr-defined]
        return spawn(self, *args)  # type: ignore[arg-type]

    pools.Pool.spawn = first_spawn  # type: ignore[method-assign]


def main() -> None:
    mark("python started", BEGAN)
    if os.environ.get("STARTPROBE_NOGC"):  # what the cyclic collector costs the start (an experiment)
        import gc

        gc.disable()
    if os.environ.get("STARTPROBE_PROFILE"):
        import cProfile

        PROFILER.append(cProfile.Profile())
        PROFILER[0].enable()  # type: ignore[attr-defined]
    import django

    original = django.setup

    def setup(*args: object, **kwargs: object) -> None:
        mark("django.setup begin")
        original(*args, **kwargs)
        mark("django.setup end")
        after_setup()
        if PROFILER:
            profile_until_fork()

    django.setup = setup  # type: ignore[assignment]
    mark("django imported")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
