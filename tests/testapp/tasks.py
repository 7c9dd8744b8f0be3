"""Tasks the suite runs in real worker processes. The ledger records every execution."""

import gc
import os
import threading
import time

from djtasks import SoftTimeLimitExceeded, current_task, report_progress, task

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


def private_kib() -> int:
    """This process's memory that no other process shares (Linux: its private pages)."""
    with open("/proc/self/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean:", "Private_Dirty:")))


@task
def full_collection_copies():
    """Run a full cyclic collection here; say how much private memory it added and what was frozen."""
    before = private_kib()
    gc.collect()
    return {"pid": os.getpid(), "copied_kib": private_kib() - before, "frozen": gc.get_freeze_count()}


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


@task
def mul(x, y):
    return x * y


@task
def xsum(numbers):
    return sum(numbers)


@task(bind=True, max_retries=2, default_retry_delay=0.5)
def flaky(self, key, succeed_on):
    """Fail (and retry) until attempt number succeed_on; report what self.request says."""
    ledger(f"{key} {self.request.retries}")
    if self.request.retries + 1 < succeed_on:
        raise self.retry(exc=ValueError(f"attempt {self.request.retries + 1} failed"))
    request = self.request
    return {
        "id": request.id,
        "retries": request.retries,
        "args": request.args,
        "queue": request.queue,
        "hostname": request.hostname,
        "headers": request.headers,
    }


@task(bind=True, max_retries=1)
def always_retry(self):
    raise self.retry(countdown=0.2)


@task(autoretry_for=(ConnectionError,), max_retries=3, retry_backoff=0.2, retry_backoff_max=0.4, retry_jitter=False)
def autoretried(key):
    ledger(key)
    raise ConnectionError(f"unreachable {key}")


# Celery's retry_kwargs win over the declaration's max_retries and default_retry_delay for autoretries.
@task(
    autoretry_for=(ValueError,),
    retry_kwargs={"max_retries": 2, "countdown": 0.1},
    max_retries=9,
    default_retry_delay=60,
)
def autoretried_with_kwargs(key):
    ledger(key)
    raise ValueError(f"bad {key}")


@task(takes_context=True, max_retries=1, default_retry_delay=0.2)
def context_retry(context, key):
    ledger(f"{key} {context.request.retries}")
    if context.request.retries == 0:
        context.retry()
    return context.request.retries


@task(rate_limit="2/s")
def limited(key):
    ledger(f"{key} {time.time()}")
    return key


@task(expires=0.5)
def short_lived():
    return "ran"


@task
def record_error(task_id):
    """An errback: receives the failed task's id."""
    ledger(f"errback {task_id}")
    return task_id


@task
def routed_glob():
    return "glob"


@task
def routed_exact():
    return "exact"


@task(queue="declared")
def declared_queue():
    return "declared"


@task(bind=True)
def show_request(self):
    request = self.request
    return {
        "headers": request.headers,
        "eta": request.eta.isoformat() if request.eta else None,
        "queue": request.queue,
        "root_id": request.root_id,
        "parent_id": request.parent_id,
    }


@task
def fail_if(value, bad):
    if value == bad:
        raise ValueError(f"bad value {value}")
    return value


@task
def clock():
    """Return time.time() as the child sees it (the clock-skew tests check their worker's clock is off)."""
    return time.time()


# Issue 14, values and exceptions (tests/attacks/test_task_values.py): each run writes one ledger
# line, so the test can tell a second run from a first. Imports are local to keep this block apart.


def _ran(key):
    ledger(f"start {key} {os.getpid()} {time.time():.3f}")


@task
def give_back(key, recipe):
    """Return the value a hostile recipe describes (tests/support/hostile.py)."""
    from tests.support import hostile

    _ran(key)
    return hostile.build(recipe)


@task
def raise_back(key, kind, recipe):
    """Raise the exception of class `kind` (hostile.EXCEPTIONS) with the value a recipe describes."""
    from tests.support import hostile

    _ran(key)
    raise hostile.exception(kind, hostile.build(recipe))


@task
async def async_raise(key, kind):
    from tests.support import hostile

    _ran(key)
    raise hostile.exception(kind, "raised in a coroutine")


@task(soft_time_limit=0.5)
async def async_sleep_past_soft_limit(key):
    import asyncio

    _ran(key)
    await asyncio.sleep(3)
    ledger(f"end {key} {os.getpid()} {time.time():.3f}")
    return "not interrupted"


@task(soft_time_limit=0.5)
def raise_after_soft_limit(key, kind):
    from tests.support import hostile

    _ran(key)
    try:
        time.sleep(5)
    except SoftTimeLimitExceeded:
        raise hostile.exception(kind, "raised while handling the soft time limit") from None


@task(typing=False)  # the attack suites call it with any arguments: storage is what they test
def echo(key, value):
    _ran(key)
    return value


@task
def kill_self_once(key, how):
    """Kill this child the first time it runs for `key` (os._exit, SIGKILL or a segfault); then succeed."""
    import ctypes
    import signal

    _ran(key)
    marker = os.environ.get("DJTASKS_LEDGER", "") + f".{key}.killed"
    if not os.path.exists(marker):
        open(marker, "w").close()
        if how == "exit":
            os._exit(3)
        elif how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            ctypes.string_at(0)
    return "survived"


@task
def where(key):
    """Say which process and thread ran this (the pools tests)."""
    ledger(f"{key} {os.getpid()} {threading.current_thread().name}")
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


def _step():
    return sum(range(100))


@task(soft_time_limit=2)
def spin_past_soft_limit():
    """Busy Python code past its soft limit, no blocking call: cleans up when the limit is raised in it.

    The limit counts from the start: the try block is the first statement (nothing to import, no
    time to take before it), and the limit leaves time to reach it on a loaded machine. The loop is
    `while True` with a break: on CPython 3.13 an interrupt at the back-edge of a `while <condition>:`
    loop that ends a try block escapes its except (python/cpython#130279; docs/topics/operations.md).
    """
    try:
        deadline = time.monotonic() + 15
        while True:
            if time.monotonic() >= deadline:
                break
            _step()
    except SoftTimeLimitExceeded as exc:
        return f"cleaned up: {exc}"
    return "not interrupted"


@task(soft_time_limit=1)
def spin_uncaught():
    """Busy Python code past its soft limit that does not catch it: fails where the limit struck."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _step()
    return "not interrupted"


@task
def shout(text):
    """Print to the process's stdout (the --logfile tests look for it)."""
    print(text, flush=True)
    return os.getpid()


# Issue 15: Celery's task API (tests/calling/test_task_api.py, test_declaring.py, test_eager.py).

from djtasks import Task, register_task, shared_task  # noqa: E402 - this block's own imports


class AddTask(Task):
    """A class-based task, declared as Celery 5's documentation does (register_task without an app)."""

    name = "tests.testapp.tasks.AddTask"
    max_retries = 1
    queue = "default"

    def run(self, x, y):
        return x + y


add_class = register_task(AddTask)


class Hooked(Task):
    """A base= class whose hooks write what they receive to the ledger."""

    def before_start(self, task_id, args, kwargs):
        ledger(f"before_start {task_id} {args} {kwargs}")

    def on_success(self, retval, task_id, args, kwargs):
        ledger(f"on_success {retval!r} {task_id} {args}")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        ledger(f"on_failure {exc!r} {task_id} {einfo.type.__name__} {'Traceback' in einfo.traceback}")

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        ledger(f"on_retry {exc!r} {task_id} {einfo.exception is exc}")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        ledger(f"after_return {status} {retval!r} {task_id} {einfo is None}")


@task(base=Hooked, bind=True, max_retries=1, default_retry_delay=0.1)
def hooked(self, mode):
    if mode == "fail":
        raise KeyError("nope")
    if mode == "retry" and self.request.retries == 0:
        raise self.retry(exc=ValueError("again"))
    return mode


class BrokenHooks(Task):
    """Hooks that raise, BaseExceptions included: none may change the outcome or stop the worker."""

    def before_start(self, task_id, args, kwargs):
        raise RuntimeError("before_start is broken")

    def on_success(self, retval, task_id, args, kwargs):
        raise RuntimeError("on_success is broken")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        raise SystemExit(3)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        raise KeyboardInterrupt


@task(base=BrokenHooks)
def broken_hooks(key, fail):
    _ran(key)
    if fail:
        raise ValueError(f"{key} failed")
    return key


@shared_task(throws=(KeyError,))
def expected_error(key):
    raise KeyError(key)


@task(bind=True)
def in_custom_state(self, key, seconds):
    """Report PROGRESS with meta, then wait: readers see the custom state while it runs."""
    self.update_state(state="PROGRESS", meta={"key": key, "done": 1, "total": 2})
    ledger(f"reported {key}")
    time.sleep(seconds)
    return "done"


@task(bind=True)
def bad_update(self, how):
    """Call update_state() wrongly; the InvalidCall is the task's failure."""
    if how == "outcome":
        self.update_state(state="SUCCESS", meta={})
    elif how == "meta":
        self.update_state(state="PROGRESS", meta={"x": {1, 2}})
    else:
        self.update_state(task_id="someone-else", state="PROGRESS")
    return "not reached"


@task(bind=True)
def replaced_by_mul(self, x):
    ledger(f"replaced {self.request.id}")
    return self.replace(mul.s(x, 10))


@task(bind=True)
def replaced_by_other_queue(self, x):
    return self.replace(mul.s(x, 3).set(queue="elsewhere"))


@task(bind=True)
def spawn(self, n):
    """Enqueue n children (the last one with add_to_parent=False) and return their ids."""
    ids = [add.delay(i, i).id for i in range(n - 1)]
    ids.append(add.apply_async((0, 0), add_to_parent=False).id)
    return ids


@task
def soft_catch(seconds):
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "soft limit"
    return "no limit"


# Issue 21's tasks (unique, debounced, keyed rate-limited, capped) are declared apart.
from . import gated_tasks  # noqa: E402, F401
