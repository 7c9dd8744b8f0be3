"""Declaring tasks: names, options, and declarations that fail at import with a useful message."""

import pytest
from django.tasks import Task as DjangoTask
from django.tasks import task as django_task
from django.tasks.exceptions import InvalidTask

from djtasks import ImproperlyDeclared, task
from djtasks.core import registry
from tests.testapp import tasks as app_tasks


def test_tasks_of_every_installed_app_are_autodiscovered():
    names = registry.names()
    assert "tests.testapp.tasks.add" in names
    assert "tests.djangoapp.tasks.multiply" in names


def test_a_task_is_a_django_task_with_celery_options():
    assert isinstance(app_tasks.add, DjangoTask)
    assert app_tasks.add.registered_name == "tests.testapp.tasks.add"
    assert app_tasks.renamed.registered_name == "custom.name"
    assert app_tasks.renamed.queue_name == "other"
    assert app_tasks.renamed.priority == 10
    assert app_tasks.quiet.ignore_result is True


def test_calling_a_task_runs_it_inline():
    assert app_tasks.add(2, 2) == 4


def test_django_decorator_passes_djtasks_options_through():
    def shout(word):
        return word.upper()

    shout.__module__ = "tests.testapp.tasks"
    shout.__qualname__ = "shout_via_django"
    declared = django_task(ignore_result=True)(shout)
    assert declared.ignore_result is True


def test_a_lambda_fails_with_what_to_change():
    with pytest.raises(InvalidTask, match="must be defined at a module level.*move it to the top level"):
        task(lambda: 1)


def test_a_nested_function_fails():
    def outer():
        def inner():
            return 1

        return inner

    with pytest.raises(InvalidTask, match="module level"):
        task(outer())


def test_an_unknown_option_names_the_closest_known_one():
    def work():
        return 1

    work.__qualname__ = "work_unknown_option"
    expected = r"Unknown task option 'ignore_results' \(did you mean 'ignore_result'\?\)"
    with pytest.raises(ImproperlyDeclared, match=expected):
        task(ignore_results=True)(work)


def test_a_duplicate_name_fails_and_says_to_pass_name():
    def first():
        return 1

    def second():
        return 2

    first.__qualname__ = "dup_first"
    second.__qualname__ = "dup_second"
    task(name="tests.duplicate")(first)
    with pytest.raises(ImproperlyDeclared, match="already used by .*Pass a distinct name"):
        task(name="tests.duplicate")(second)


@pytest.mark.parametrize("priority", [101, -101, 1.5])
def test_priority_out_of_range_fails(priority):
    def job():
        return 1

    job.__qualname__ = f"job_priority_{abs(int(priority * 10))}"
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100"):
        task(priority=priority)(job)


def test_run_after_cannot_be_declared():
    with pytest.raises(ImproperlyDeclared, match="run_after"):
        task(run_after=None)


@pytest.mark.parametrize("bad", ["line\nbreak", "tab\there", "nul\x00", "x" * 256])
def test_a_task_name_that_could_forge_a_log_line_or_overflow_its_column_fails_at_declaration(bad):
    def body():
        return 1

    body.__qualname__ = "body"  # module level in the registry's eyes
    with pytest.raises(ImproperlyDeclared, match="task name"):
        task(name=bad)(body)
