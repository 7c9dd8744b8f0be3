"""Celery's settings at the top level of Django settings: read as their DJTASKS keys, or reported by the checks."""

import json
from datetime import timedelta

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from djtasks.checks import check_settings
from djtasks.core.conf import Settings, get_settings
from djtasks.models import TaskRecord
from djtasks.worker.supervisor import Worker
from tests.testapp.tasks import add, routed_exact


def messages(level=checks.DEBUG):
    return [(m.id, m.msg, m.hint) for m in check_settings() if m.level >= level]


class Queue:
    """What kombu.Queue looks like to task_queues: an object with a name."""

    def __init__(self, name):
        self.name = name


CELERY = {
    "CELERY_BROKER_URL": "redis://cache.example:6380/3",
    "CELERY_TASK_DEFAULT_QUEUE": "celery",
    "CELERY_TASK_QUEUES": [Queue("celery"), Queue("mail")],
    "CELERY_TASK_ROUTES": [{"tests.testapp.tasks.add": {"queue": "mail", "routing_key": "mail"}}, {"*": "celery"}],
    "CELERY_TASK_TRACK_STARTED": True,
    "CELERY_TASK_SOFT_TIME_LIMIT": 50,
    "CELERY_TASK_TIME_LIMIT": 60,
    "CELERY_RESULT_EXPIRES": timedelta(hours=1),
    "CELERY_BEAT_SCHEDULE": {"tick": {"task": "tests.testapp.tasks.stamp", "schedule": 30.0}},
    "CELERY_WORKER_CONCURRENCY": 3,
    "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
    "CELERY_WORKER_MAX_TASKS_PER_CHILD": 100,
    "CELERY_WORKER_MAX_MEMORY_PER_CHILD": 200000,
    "CELERY_WORKER_SEND_TASK_EVENTS": False,
    "CELERY_TASK_SERIALIZER": "json",
    "CELERY_ACCEPT_CONTENT": ["json"],
}


def test_celery_settings_are_read_as_their_djtasks_keys():
    with override_settings(DJTASKS={}, **CELERY):
        config = get_settings()
        assert (config.REDIS_URL, config.DEFAULT_QUEUE, config.QUEUES) == (
            "redis://cache.example:6380/3",
            "celery",
            ("celery", "mail"),
        )
        assert config.ROUTES == {"tests.testapp.tasks.add": {"queue": "mail", "routing_key": "mail"}, "*": "celery"}
        assert (config.TRACK_STARTED, config.SOFT_TIME_LIMIT, config.TIME_LIMIT, config.RESULT_EXPIRES) == (
            True,
            50,
            60,
            3600.0,
        )
        assert config.BEAT_SCHEDULE == CELERY["CELERY_BEAT_SCHEDULE"]
        assert (config.CONCURRENCY, config.PREFETCH, config.MAX_TASKS_PER_CHILD) == (3, 1, 100)
        assert (config.MAX_MEMORY_PER_CHILD, config.ENABLE_EVENTS) == (200000, False)
        assert [m for m in messages() if m[0] != "djtasks.E018"] == []  # tasks on other queues: see below
    assert get_settings().REDIS_URL != CELERY["CELERY_BROKER_URL"]  # override_settings ended: read again


def test_pre_4_names_are_read_and_the_newer_name_and_djtasks_win():
    old = {"BROKER_URL": "redis://old:1/0", "CELERYD_CONCURRENCY": 5, "CELERY_ROUTES": {"x.*": "old"}}
    with override_settings(DJTASKS={"ROUTES": {"x.*": "mine"}}, CELERY_WORKER_CONCURRENCY=7, **old):
        config = get_settings()
        assert (config.REDIS_URL, config.CONCURRENCY, config.ROUTES) == ("redis://old:1/0", 7, {"x.*": "mine"})
        found = messages()
        assert ("djtasks.W021", "CELERYD_CONCURRENCY is not read: CELERY_WORKER_CONCURRENCY is set too.") in [
            m[:2] for m in found
        ]
        assert ("djtasks.W021", "CELERY_ROUTES is not read: DJTASKS['ROUTES'] is set too.") in [m[:2] for m in found]


@pytest.mark.parametrize(
    ("name", "value", "check_id", "words"),
    [
        ("CELERY_RESULT_BACKEND", "django-db", "djtasks.W020", "in the database"),
        ("CELERY_TASK_ANNOTATIONS", {"*": {"rate_limit": "10/s"}}, "djtasks.W020", "@task"),
        ("CELERY_ANNOTATIONS", {"*": {"rate_limit": "10/s"}}, "djtasks.W020", "taskctl rate_limit"),
        ("CELERY_TASK_ACKS_LATE", True, "djtasks.W020", "LEASE_SECONDS"),
        ("CELERY_TIMEZONE", "Europe/Paris", "djtasks.W020", "TIME_ZONE"),
        ("CELERY_WORKER_POOL", "gevent", "djtasks.W020", "prefork"),
        ("CELERYD_HIJACK_ROOT_LOGGER", False, "djtasks.W020", "LOGGING"),
        ("CELERY_SOME_FUTURE_SETTING", 1, "djtasks.W020", "coming-from-celery"),
        ("CELERY_TASK_SERIALIZER", "pickle", "djtasks.E020", "JSON only"),
        ("CELERY_ACCEPT_CONTENT", ["json", "pickle"], "djtasks.E020", "JSON only"),
    ],
)
def test_celery_settings_djtasks_does_not_read_are_reported_with_the_djtasks_way(name, value, check_id, words):
    with override_settings(**{name: value}):
        [found] = [m for m in messages() if name in m[1]]
    assert found[0] == check_id and words in f"{found[1]} {found[2]}"


def test_eager_settings_are_read_or_reported():
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        found = [m for m in messages() if "CELERY_TASK_ALWAYS_EAGER" in m[1]]
        if "TASK_ALWAYS_EAGER" in Settings.names():  # the eager mode of issue 15's other half
            assert found == [] and get_settings().TASK_ALWAYS_EAGER is True
        else:
            assert [m[0] for m in found] == ["djtasks.W020"]


def test_a_bad_celery_value_is_reported_under_its_own_name_and_stops_the_worker():
    with override_settings(DJTASKS={}, CELERY_BROKER_URL="amqp://guest@localhost//", CELERY_WORKER_CONCURRENCY=0):
        found = messages(checks.ERROR)
        assert any(i == "djtasks.E004" and "CELERY_BROKER_URL 'amqp://guest@localhost//'" in msg for i, msg, _ in found)
        assert any(i == "djtasks.E005" and msg.startswith("CELERY_WORKER_CONCURRENCY is 0") for i, msg, _ in found)
        with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
            Worker(queues=["default"])


def test_declared_queues_are_the_only_ones_routes_tasks_and_workers_may_name():
    with override_settings(DJTASKS={"QUEUES": ["default", "routed"], "ROUTES": {"a.*": "routed", "b.*": "mail"}}):
        found = messages(checks.ERROR)
        assert ("djtasks.E017", "DJTASKS['ROUTES']['b.*'] routes to 'mail', which is not a declared queue.") in [
            m[:2] for m in found
        ]
        assert any(i == "djtasks.E018" and "'custom.name' is declared on queue 'other'" in msg for i, msg, _ in found)
        assert all("DJTASKS['QUEUES']" in hint for i, _, hint in found if i in {"djtasks.E017", "djtasks.E018"})
        with pytest.raises(ImproperlyConfigured, match="-Q names 'nope', which is not a declared queue"):
            Worker(queues=["nope"])
    with override_settings(DJTASKS={}, CELERY_TASK_QUEUES=["celery"], CELERY_TASK_DEFAULT_QUEUE="default"):
        found = messages(checks.ERROR)
        assert ("djtasks.E017", "CELERY_TASK_DEFAULT_QUEUE 'default' is not a declared queue.") in [
            m[:2] for m in found
        ]


@pytest.mark.django_db(transaction=True)
def test_a_celery_project_runs_on_its_own_settings(worker):
    top = {"CELERY_TASK_DEFAULT_QUEUE": "celery", "CELERY_TASK_ROUTES": {"tests.testapp.tasks.routed_exact": "mail"}}
    process = worker(env={"DJTASKS_TEST_DJANGO_SETTINGS": json.dumps(top)})  # no -Q: DEFAULT_QUEUE, "celery"
    with override_settings(**top):
        plain = add.delay(2, 2)
        assert TaskRecord.objects.get(pk=plain.id).queue == "celery" and plain.get(timeout=20) == 4
        # The test settings' DJTASKS["ROUTES"] is set too: it wins, and the check says so.
        assert TaskRecord.objects.get(pk=routed_exact.delay().id).queue == "exact"
        assert "djtasks.W021" in [m[0] for m in messages() if "CELERY_TASK_ROUTES" in m[1]]
    assert "[queues]\n.> celery\n" in process.log()
