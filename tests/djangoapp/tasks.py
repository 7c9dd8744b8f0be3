"""Declared with django.tasks only: no djtasks import anywhere in this app."""

from django.tasks import TaskContext, task


@task
def multiply(a, b):
    return a * b


@task(takes_context=True)
def which_attempt(context: TaskContext, label):
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task(priority=5, queue_name="default")
def broken():
    raise KeyError("missing")


@task
async def async_double(x):
    return x * 2
