"""Tasks as Celery's documentation declares them (userguide: tasks, calling, canvas; next steps).

Adapted only by imports: `from djtasks import task` where the docs write `@app.task` with
`app = Celery(...)`. tests/calling/test_celery_examples.py runs the documentation's examples on them.
"""

import time

from djtasks import task


@task
def add(x, y):
    return x + y


@task
def mul(x, y):
    return x * y


@task
def xsum(numbers):
    return sum(numbers)


@task
def tsum(numbers):
    return sum(numbers)


@task
def identity(x):
    return x


@task
def add_to_all(nums, val):
    return [n + val for n in nums]


@task
def subtract(x, y):
    return x - y


@task
def hello(to):
    return "hello {0}".format(to)  # noqa: UP030, UP032 - as the docs write it


@task
def raising_task():
    raise ValueError("something something")


# For the worker-output and signal tests: values that hold a secret, errors that quote one.


@task
def reveal(x, password=None):
    return {"sum": x, "password": password, "note": f"uses {password}"}


@task
def refuse(password=None):
    raise ValueError(f"wrong password {password}\nsecond line")


# For the canvas tests: a step that takes its time, and one that fails on a given value.


@task
def pause(x, seconds):
    time.sleep(seconds)
    return x


@task
def fail_on(value, bad):
    if value == bad:
        raise ValueError(f"bad value {value}")
    return value


# userguide/tasks.rst's tasks, as the guide writes them (the test reads what they print).


@task(name="sum-of-two-numbers")
def add_named(x, y):
    return x + y


@task(bind=True)
def dump_context(self, x, y):
    print("Executing task id {0.id}, args: {0.args!r} kwargs: {0.kwargs!r}".format(self.request))  # noqa: UP030, UP032


@task(bind=True)
def upload_files(self, filenames):
    for i, file in enumerate(filenames):  # noqa: B007 - as the guide writes it
        if not self.request.called_directly:
            self.update_state(state="PROGRESS", meta={"current": i, "total": len(filenames)})
    return len(filenames)
