"""Celery's declaration options, class-based tasks, base= classes, shared_task and the typing check."""

from __future__ import annotations

import pytest

from djtasks import AsyncResult, Task, register_task, send_task, shared_task, task
from djtasks.core import registry
from djtasks.exceptions import ImproperlyDeclared, InvalidCall
from djtasks.models import DeadLetter, TaskRecord
from tests.support.waiting import wait_for
from tests.testapp import tasks as app_tasks
from tests.testapp.tasks import AddTask, add, add_class, expected_error, hooked

pytestmark = [pytest.mark.django_db(transaction=True)]


def _plain(x, y):
    return x + y


_plain.__module__ = "tests.testapp.tasks"


class Routed(Task):
    queue = "images"
    priority = 20
    max_retries = 7
    autoretry_for = [OSError]

    def run(self, path):
        return path


class WithDb(Task):
    """Celery's DatabaseTask example: a base class with an attribute cached on the instance."""

    _db = None

    @property
    def db(self):
        if self._db is None:
            self._db = {"connected": True}
        return self._db


@task(base=WithDb, bind=True, name="tests.with_db")
def uses_db(self):
    return self.db["connected"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"acks_late": False}, "acks_late=False is not supported.*at-most-once"),
        ({"reject_on_worker_lost": False}, "reject_on_worker_lost=False is not supported.*handed back"),
        ({"store_errors_even_if_ignored": False}, "store_errors_even_if_ignored=False.*whether or not"),
        ({"serializer": "pickle"}, "djtasks carries JSON only"),
        ({"typing": "yes"}, "typing must be True or False"),
        ({"throws": "KeyError"}, "throws must be a sequence of exception classes"),
        ({"throws": [KeyError, 3]}, "throws must be a sequence of exception classes"),
        ({"soft_time_limit": 5, "time_limit": 2}, "soft_time_limit must be less than or equal to time_limit"),
        ({"base": dict}, "base= must be a subclass of djtasks.Task"),
        ({"celery_typo": 1}, "Unknown task option 'celery_typo'"),
    ],
)
def test_a_celery_option_djtasks_cannot_honour_is_refused_at_declaration_with_the_reason(options, message):
    with pytest.raises(ImproperlyDeclared, match=message):
        task(name=f"refused.{sorted(options)[0]}", **options)(_plain)


def test_celery_options_that_say_what_djtasks_does_are_accepted():
    declared = task(
        name="accepted.options",
        acks_late=True,
        reject_on_worker_lost=True,
        store_errors_even_if_ignored=True,
        serializer="json",
        typing=False,
        throws=[KeyError],
        autoretry_for=[ConnectionError, TimeoutError],
    )(_plain)
    assert declared.autoretry_for == (ConnectionError, TimeoutError) and declared.throws == (KeyError,)
    assert declared.typing is False and declared.acks_late is True


def test_shared_task_is_task():
    assert shared_task is task
    assert isinstance(expected_error, Task) and expected_error.throws == (KeyError,)


def test_a_class_based_task_is_registered_the_celery_way_and_runs_inline():
    assert isinstance(add_class, AddTask) and registry.lookup("tests.testapp.tasks.AddTask") is add_class
    assert add_class.max_retries == 1 and add_class.queue_name == "default"
    assert add_class(2, 3) == 5
    assert add_class.apply((4, 5)).get() == 9
    assert register_task(AddTask()) is add_class  # Celery 5's form: an instance, no app
    with pytest.raises(ImproperlyDeclared, match="register_task"):
        register_task(dict)


class NoRun(Task):
    name = "tests.norun"


def test_a_class_without_run_is_not_a_task():
    with pytest.raises(ImproperlyDeclared, match="give a Task subclass run"):
        register_task(NoRun)


def test_class_attributes_are_the_options_of_a_class_based_task():
    routed = register_task(Routed)
    assert routed.name == f"{__name__}.Routed" and routed("x.png") == "x.png"
    assert (routed.queue_name, routed.priority, routed.max_retries, routed.autoretry_for) == (
        "images",
        20,
        7,
        (OSError,),
    )


def test_a_class_based_task_runs_in_the_worker(worker):
    worker()
    assert add_class.delay(20, 22).get(timeout=20) == 42
    assert TaskRecord.objects.get(task_name="tests.testapp.tasks.AddTask").result == 42


def test_a_base_class_gives_the_task_its_hooks_and_attributes():
    assert isinstance(uses_db, WithDb) and uses_db() is True
    assert uses_db.db is uses_db.db  # cached on the instance, as Celery's DatabaseTask example does
    assert isinstance(hooked, app_tasks.Hooked)


def test_delay_checks_the_arguments_against_the_signature_before_writing(redis_server):
    with pytest.raises(InvalidCall, match=r"add\(x, y\) cannot take these arguments: too many positional") as info:
        add.delay("a", "b", "c")
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidCall, match="missing a required argument: 'y'"):
        add.delay(1)
    with pytest.raises(InvalidCall, match="unexpected keyword argument 'z'"):
        add.apply_async((1, 2), {"z": 3})
    with pytest.raises(InvalidCall, match="cannot take these arguments"):
        add.s(1).delay(2, 3)
    with pytest.raises(InvalidCall, match="cannot take these arguments"):
        hooked.delay()  # bind=True: self is not the caller's to pass
    assert TaskRecord.objects.count() == 0
    assert hooked.delay("ok").id and add_class.delay(1, 2).id


def test_typing_false_and_send_task_enqueue_what_they_are_given_and_the_worker_sets_it_aside(worker):
    unchecked = task(name="tests.unchecked", typing=False)(_plain)
    first = unchecked.delay(1, 2, 3)
    second = send_task("tests.testapp.tasks.add", (1,))
    assert TaskRecord.objects.filter(pk__in=[first.id, second.id]).count() == 2
    worker()
    with pytest.raises(TypeError, match="arguments do not match"):
        second.get(timeout=20)
    assert wait_for(lambda: DeadLetter.objects.filter(task_id=second.id).exists(), timeout=10)


def test_an_expected_error_fails_the_task_and_is_logged_without_a_traceback(worker):
    process = worker()
    result = expected_error.delay("missing")
    with pytest.raises(KeyError):
        result.get(timeout=20)
    assert AsyncResult(result.id).state == "FAILURE"
    assert wait_for(lambda: "raised expected" in process.log(), timeout=10)
    line = next(line for line in process.log().splitlines() if "raised expected" in line)
    assert f"tests.testapp.tasks.expected_error[{result.id}] raised expected: builtins.KeyError" in line
    assert "Traceback" not in process.log()
