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


# Django 6.1's tests/tasks/tasks.py (and django-tasks-db's tests/tasks.py), as written there:
# tests/test_django_tasks_contract.py runs Django's own tests of them against djtasks.


@task()
def noop_task(*args, **kwargs):
    return None


@task
def noop_task_from_bare_decorator(*args, **kwargs):
    return None


@task()
async def noop_task_async(*args, **kwargs):
    return None


@task()
def calculate_meaning_of_life():
    return 42


@task()
def failing_task_value_error():
    raise ValueError("This Task failed due to ValueError")


@task()
def failing_task_system_exit():
    raise SystemExit("This Task failed due to SystemExit")


@task()
def complex_exception():
    raise ValueError(ValueError("This task failed"))


@task()
def complex_return_value():
    # Return something which isn't JSON serializable nor picklable.
    return lambda: True


@task(takes_context=True)
def get_task_id(context):
    return context.task_result.id


@task(takes_context=True)
def test_context(context, attempt):
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt
