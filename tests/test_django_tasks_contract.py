"""Django 6.1's own tests of django.tasks, and django-tasks-db's, run against djtasks.

From Django's tests/tasks/ (test_tasks.py, test_immediate_backend.py) and django-tasks-db's
tests/tests.py, each test below names the one it comes from. They are adapted only where they
name their own backend (DummyBackend, ImmediateBackend, DatabaseBackend) or worker (an
in-process run_worker, the immediate backend running tasks at enqueue): here the backend is
djtasks' and the worker a real `taskworker` process, so a test waits for the outcome it reads.
Tests of what djtasks deliberately does otherwise are left out, with the reason in the README's
django.tasks section (KeyboardInterrupt is recorded as a failure, not re-raised; a backend's
QUEUES setting and the immediate backend's "no get_result" have no djtasks counterpart).
"""

import dataclasses
import logging
import pickle
import uuid
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.tasks import DEFAULT_TASK_QUEUE_NAME, TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, Task
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django.utils.module_loading import import_string

from djtasks.models import TaskRecord
from tests.djangoapp import tasks as test_tasks
from tests.support.waiting import wait_finished

pytestmark = [pytest.mark.django_db(transaction=True)]


# Django tests/tasks/test_tasks.py ---------------------------------------------------------------


def test_task_decorator():
    assert isinstance(test_tasks.noop_task, Task)
    assert isinstance(test_tasks.noop_task_async, Task)
    assert isinstance(test_tasks.noop_task_from_bare_decorator, Task)


def test_enqueue_task(redis_server):
    result = test_tasks.noop_task.enqueue()
    assert result.status == TaskResultStatus.READY
    assert result.task == test_tasks.noop_task
    assert result.args == [] and result.kwargs == {}


def test_enqueue_task_async(redis_server):
    result = async_to_sync(test_tasks.noop_task.aenqueue)()
    assert result.status == TaskResultStatus.READY and result.task == test_tasks.noop_task


def test_enqueue_with_invalid_argument(redis_server):
    with pytest.raises(TypeError):  # djtasks' message names the argument: "args[0] ... is not JSON-serializable"
        test_tasks.noop_task.enqueue(datetime.now())
    assert TaskRecord.objects.count() == 0


def test_using_priority_queue_name_and_run_after():
    now = timezone.now()
    assert test_tasks.noop_task.priority == 0
    assert test_tasks.noop_task.using(priority=1).priority == 1
    assert test_tasks.noop_task.queue_name == DEFAULT_TASK_QUEUE_NAME
    assert test_tasks.noop_task.using(queue_name="queue_1").queue_name == "queue_1"
    assert test_tasks.noop_task.run_after is None
    assert test_tasks.noop_task.using(run_after=now).run_after == now
    assert test_tasks.noop_task.priority == 0 and test_tasks.noop_task.run_after is None


def test_using_creates_new_instance_and_chains():
    new_task = test_tasks.noop_task.using()
    assert new_task == test_tasks.noop_task and new_task is not test_tasks.noop_task
    now = timezone.now()
    run_after_task = test_tasks.noop_task.using(run_after=now)
    priority_task = run_after_task.using(priority=10)
    assert (priority_task.priority, priority_task.run_after, run_after_task.priority) == (10, now, 0)


def test_refresh_result(redis_server):
    result = async_to_sync(test_tasks.noop_task.aenqueue)()
    original = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == original
    async_to_sync(result.arefresh)()
    assert dataclasses.asdict(result) == original


def test_naive_datetime():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime."):
        test_tasks.noop_task.using(run_after=datetime.now())


def test_invalid_priority():
    message = f"priority must be a whole number between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}."
    for priority in (-101, 101, 3.1):
        with pytest.raises(InvalidTask, match=message):
            test_tasks.noop_task.using(priority=priority)
    for priority in (100, -100, 0):
        test_tasks.noop_task.using(priority=priority)


def test_call_task():
    assert test_tasks.calculate_meaning_of_life.call() == 42
    assert async_to_sync(test_tasks.calculate_meaning_of_life.acall)() == 42
    assert async_to_sync(test_tasks.noop_task_async.acall)() is None
    assert test_tasks.noop_task_async.call() is None


def test_get_result(redis_server):
    result = default_task_backend.enqueue(test_tasks.noop_task, (), {})
    assert test_tasks.noop_task.get_result(result.id) == result
    assert async_to_sync(test_tasks.noop_task.aget_result)(result.id) == result


def test_get_missing_and_incorrect_result(redis_server):
    with pytest.raises(TaskResultDoesNotExist):
        test_tasks.noop_task.get_result("123")
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(test_tasks.noop_task.aget_result)("123")
    result = default_task_backend.enqueue(test_tasks.noop_task_async, (), {})
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        test_tasks.noop_task.get_result(result.id)


def test_invalid_function():
    def nested():
        pass

    for invalid_function in [any, nested]:
        with pytest.raises(InvalidTask, match="Task function must be defined at a module level."):
            task()(invalid_function)


def test_name():
    """Django's contract wins on the django.tasks object: name is the function's; Celery's name lives beside it."""
    assert test_tasks.noop_task.name == "noop_task"
    assert test_tasks.noop_task_async.name == "noop_task_async"
    assert test_tasks.noop_task.registered_name == "tests.djangoapp.tasks.noop_task"


def test_module_path():
    assert test_tasks.noop_task.module_path == "tests.djangoapp.tasks.noop_task"
    assert import_string(test_tasks.noop_task.module_path) is test_tasks.noop_task
    assert import_string(test_tasks.noop_task_async.module_path) is test_tasks.noop_task_async


def test_pickle_task_and_task_result(redis_server):
    assert pickle.loads(pickle.dumps(test_tasks.noop_task)) == test_tasks.noop_task
    result = test_tasks.noop_task.enqueue()
    assert pickle.loads(pickle.dumps(result)) == result


def test_takes_context_without_taking_context():
    with pytest.raises(InvalidTask, match="Task takes context but does not have a first argument of 'context'."):
        task(takes_context=True)(test_tasks.calculate_meaning_of_life.func)


def test_run_after_in_decorator():
    with pytest.raises(TypeError, match="run_after cannot be defined statically with the @task decorator."):
        task(run_after=timezone.now())(test_tasks.calculate_meaning_of_life.func)


# django-tasks-db tests/tests.py: enqueueing ------------------------------------------------------


def test_enqueue_task_row_and_signal(redis_server):
    received = []

    def capture(sender, task_result, **kwargs):
        received.append((sender, task_result))

    task_enqueued.connect(capture)
    try:
        result = test_tasks.noop_task.enqueue(1, two=3)
    finally:
        task_enqueued.disconnect(capture)
    assert uuid.UUID(result.id).version == 4
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert result.started_at is None and result.last_attempted_at is None and result.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert (result.args, result.kwargs, result.attempts) == ([1], {"two": 3}, 0)
    assert received == [(type(task_backends["default"]), result)]


def test_enqueue_logs(redis_server, caplog):
    with caplog.at_level(logging.DEBUG, logger="django.tasks"):
        result = test_tasks.noop_task.enqueue()
    lines = [r.getMessage() for r in caplog.records if r.name == "django.tasks"]
    assert len(lines) == 1 and "enqueued" in lines[0] and result.id in lines[0]


# Both suites: what a worker makes of the tasks ---------------------------------------------------


def test_tasks_run_and_their_results_read_as_django_says(worker):
    worker()
    for task_, args, kwargs, value in [
        (test_tasks.noop_task, (1,), {"two": 3}, None),
        (test_tasks.noop_task_async, (), {}, None),
        (test_tasks.calculate_meaning_of_life, (), {}, 42),
    ]:
        result = wait_finished(task_.enqueue(*args, **kwargs), timeout=30)
        assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished
        assert result.started_at >= result.enqueued_at and result.finished_at >= result.started_at
        assert result.last_attempted_at is not None
        assert result.return_value == value and result.attempts == 1
        assert (result.args, result.kwargs, result.task) == (list(args), kwargs, task_)
    context = wait_finished(test_tasks.get_task_id.enqueue(), timeout=30)
    assert context.return_value == context.id
    assert wait_finished(test_tasks.test_context.enqueue(1), timeout=30).status == TaskResultStatus.SUCCESSFUL


def test_failures_keep_their_class_message_and_traceback(worker):
    process = worker()
    cases = [
        (test_tasks.failing_task_value_error, ValueError, "This Task failed due to ValueError"),
        (test_tasks.failing_task_system_exit, SystemExit, "This Task failed due to SystemExit"),
    ]
    for task_, exception, message in cases:
        result = wait_finished(task_.enqueue(), timeout=30)
        assert result.status == TaskResultStatus.FAILED and result.is_finished
        with pytest.raises(ValueError, match="Task failed"):
            result.return_value  # noqa: B018
        assert result.finished_at >= result.started_at >= result.enqueued_at
        assert result.errors[0].exception_class is exception
        assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n"), result.errors[0].traceback
    complex_exception = wait_finished(test_tasks.complex_exception.enqueue(), timeout=30)
    assert complex_exception.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in complex_exception.errors[0].traceback
    complex_value = wait_finished(test_tasks.complex_return_value.enqueue(), timeout=30)
    assert complex_value.status == TaskResultStatus.FAILED and complex_value._return_value is None
    assert complex_value.errors[0].exception_class is TypeError
    assert "is not JSON serializable" in complex_value.errors[0].traceback
    # Django's ERROR record of each failure carries its exception (the immediate backend's test_catches_exception).
    log = process.log()
    for task_, exception, message in cases:
        row = TaskRecord.objects.get(task_name=task_.registered_name)
        line = f"ERROR django.tasks Task id={row.id} path={task_.module_path} state=FAILED"
        assert line in log
        assert f"{exception.__name__}: {message}" in log.split(line, 1)[1][:4000]


def test_run_after_priority(worker):
    """django-tasks-db's test_run_after_priority: priority first, then the earliest run_after."""
    now = timezone.now()
    old = test_tasks.noop_task.using(priority=20, run_after=now - timedelta(hours=2)).enqueue()
    very_old = test_tasks.noop_task.using(priority=20, run_after=now - timedelta(hours=10)).enqueue()
    far_future = test_tasks.noop_task.using(run_after=now + timedelta(hours=10)).enqueue()
    high_far_future = test_tasks.noop_task.using(priority=10, run_after=now + timedelta(hours=10)).enqueue()
    future = test_tasks.noop_task.using(run_after=now + timedelta(hours=2)).enqueue()
    high = test_tasks.noop_task.using(priority=10).enqueue()
    low = test_tasks.noop_task.using(priority=2).enqueue()
    lower = test_tasks.noop_task.using(priority=-2).enqueue()
    worker("-c", "1")
    ready = [very_old, old, high, low, lower]
    for result in ready:
        wait_finished(result, timeout=30)
    started = list(
        TaskRecord.objects.filter(started_at__isnull=False).order_by("started_at").values_list("id", flat=True)
    )
    assert started == [r.id for r in ready]
    assert {r.id for r in (far_future, high_far_future, future)}.isdisjoint(started)
