"""Every DJTASKS key refuses its wrong values: `check` fails with a hint, and the worker will not start.

INVALID holds wrong values for every key of Settings (a test keeps it so): each must fail the
system checks with an error that has a hint naming the valid range, and make Worker() refuse
to be built, with the same message. A sample goes through real `manage.py taskworker`
processes, DJTASKS and command-line options alike.
"""

import json
import math
import subprocess

import pytest
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from djtasks.checks import check_settings
from djtasks.core import celeryconf
from djtasks.core.conf import Settings
from djtasks.worker.supervisor import Worker
from tests.support.workers import WorkerProcess

NAN, INF = math.nan, math.inf
ADD = "tests.testapp.tasks.add"

# Wrong values for each key, in the test settings (LEASE_SECONDS 6, SOCKET_TIMEOUT 3, ...).
INVALID: dict[str, list[object]] = {
    "REDIS_URL": [
        "localhost:6379",
        "",
        6379,
        "sentinel://h1",
        "sentinel://h1:26379;redis://h2:6379",
        "sentinel://h1:26379/0;sentinel://h2:26379/1",
        "sentinel://h1:99999",
        "sentinel://:pw@h1:x/0",
    ],
    "REDIS_OPTIONS": [
        {"socket_timeout": 5},
        {"decode_responses": True},
        {"password": 5},
        {"health_check_interval": True},
        {"master_name": ""},
        {"master_name": "m"},  # with a redis:// URL: Sentinel's key means nothing there
        {"sentinel_kwargs": {"bogus": 1}},
        {"sentinel_kwargs": {"password": None}},
        "master_name=m",
        None,
    ],
    "PREFIX": ["", "my app", "{tag}", "a:b", "x" * 101, "tab\there", 5],
    "SOCKET_TIMEOUT": [0, -1, 0.5, 4.0, True, NAN, INF, "5", None],
    "SOCKET_CONNECT_TIMEOUT": [0, -2, 10.0, None, "1", True, INF],
    "PUBLISH_BACKOFF": [-0.1, NAN, 10**6, False],
    "DEFAULT_QUEUE": ["", " padded", "a,b", "line\nbreak", "q" * 101, None, 3],
    "TRACK_STARTED": ["yes", 1, None],
    "TASK_ALWAYS_EAGER": ["yes", 1, None],
    "TASK_EAGER_PROPAGATES": ["no", 0, None],
    "LEASE_SECONDS": [4, 56, 120, 0, -30, True, "30", NAN],
    "REAP_INTERVAL": [0, -1, 6, 6.5, True, INF],
    "SWEEP_INTERVAL": [0, -2, 61, True, None],
    "SWEEP_GRACE": [-1, INF, "2"],
    "MAX_DELIVERIES": [0, -1, 1.5, True, "5", 10**6],
    "PREFETCH": [0, -8, 1001, 8.0, True],
    "SHUTDOWN_GRACE": [0, -1, NAN, 10**9, True],
    "SOFT_TIME_LIMIT": [0, -1, "10", True, INF],
    "TIME_LIMIT": [0, -5, False, []],
    "MAX_TASKS_PER_CHILD": [0, -1, 2.5, True, "100"],
    "MAX_MEMORY_PER_CHILD": [0, -1024, 1.5, True],
    "DB_RETRY_WINDOW": [0, -1, NAN, "300"],
    "BEAT_SCHEDULE": [
        [("tick", {})],
        "tick",
        {"job": {"task": ADD, "schedule": "daily"}},
        {"job": {"task": "tests.testapp.tasks.ad", "schedule": 1.0}},
        {"job": {"task": ADD, "schedule": -1}},
    ],
    "BEAT_MISFIRE_GRACE": [0, -5, True, "5"],
    "ROUTES": [["a.*"], {"a.*": {"queues": "x"}}, {"a": ""}, {"a": "b,c"}, {"": "x"}, {"a": "q" * 101}],
    "RESULT_EXPIRES": [-1, "1d", NAN, True],
    "ENABLE_EVENTS": ["yes", 0, None],
    "EVENTS_MAXLEN": [10, 0, -1, True, 10**9, 100.5],
    "METRICS_TOKEN": ["short", "", "x" * 15, "a" * 16 + " b", "a" * 20 + "\n", 1234567890123456789],
    "WORKER_NAME": ["", "a b", "a,b", "x\n", 5, "x" * 201],
    "CONCURRENCY": [0, -1, True, 2.0, "4", 10**6],
    "MAX_CONCURRENCY": [0, 2000, True, "x"],
    "REDACT_KEYS": ["password", ["password", ""], [1], None],
    "QUEUES": ["default", ["default", "a,b"], [""], [1], None, ["\x1b[2J"]],
}
# Values each fine alone, wrong together: (the key the error names, the values).
RELATIONS: list[tuple[str, dict[str, object]]] = [
    ("SOFT_TIME_LIMIT", {"SOFT_TIME_LIMIT": 10, "TIME_LIMIT": 5}),
    ("SOFT_TIME_LIMIT", {"SOFT_TIME_LIMIT": 5, "TIME_LIMIT": 5}),
    ("REAP_INTERVAL", {"LEASE_SECONDS": 30, "REAP_INTERVAL": 31}),
    ("REAP_INTERVAL", {"LEASE_SECONDS": 55, "REAP_INTERVAL": 10}),
    ("SOCKET_TIMEOUT", {"LEASE_SECONDS": 10, "SOCKET_TIMEOUT": 6}),
    ("CONCURRENCY", {"CONCURRENCY": 9, "MAX_CONCURRENCY": 8}),
    ("REDIS_OPTIONS", {"REDIS_URL": "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380/0"}),
    ("REDIS_OPTIONS", {"REDIS_URL": "sentinel://127.0.0.1:26379/0", "REDIS_OPTIONS": {"password": "x"}}),
]
CASES = [
    pytest.param(key, {key: value}, id=f"{key}={value!r}"[:80]) for key, values in INVALID.items() for value in values
] + [pytest.param(key, values, id=",".join(f"{k}={v!r}" for k, v in values.items())) for key, values in RELATIONS]


def label(key):
    return f"DJTASKS[{key!r}]"


def errors():
    return [m for m in check_settings() if m.level >= checks.ERROR]


def test_every_key_of_settings_has_invalid_values_in_the_table():
    assert set(INVALID) == Settings.names()
    assert all(len(values) >= 2 for values in INVALID.values())


def test_the_test_settings_and_the_defaults_pass():
    assert errors() == []
    with override_settings(DJTASKS={}):
        assert errors() == []
        Worker(queues=["default"])


@pytest.mark.parametrize(("key", "values"), CASES)
def test_an_invalid_value_fails_the_check_with_a_hint_and_the_worker_refuses_it(key, values):
    with override_settings(DJTASKS={**settings.DJTASKS, **values}):
        found = errors()
        assert found, f"{values} passed the checks"
        assert all(error.hint for error in found), [(e.id, e.msg) for e in found]
        assert any(label(key) in error.msg for error in found), [e.msg for e in found]
        with pytest.raises(ImproperlyConfigured) as refused:
            Worker(queues=["default"])
    for error in found:
        assert error.msg in str(refused.value) and error.hint in str(refused.value)


def test_a_range_error_names_the_range_and_the_default_in_its_hint():
    with override_settings(DJTASKS={**settings.DJTASKS, "PREFETCH": 0}):
        [error] = errors()
    assert (error.id, error.msg) == ("djtasks.E005", "DJTASKS['PREFETCH'] is 0; it must be from 1 to 1000.")
    assert error.hint == "Valid: int from 1 to 1000. Default: 16."


def test_a_bool_is_not_a_number():
    with override_settings(DJTASKS={**settings.DJTASKS, "SOCKET_TIMEOUT": True}):
        [error] = errors()
    assert error.id == "djtasks.E003" and "bool" in error.msg and "from 1.5" in error.hint


def test_djtasks_that_is_not_a_dict_stops_the_worker():
    with override_settings(DJTASKS=[("PREFETCH", 1)]):
        [error] = errors()
        assert error.id == "djtasks.E001" and error.hint
        with pytest.raises(ImproperlyConfigured, match="DJTASKS must be a dict"):
            Worker(queues=["default"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "--concurrency is 0; it must be from 1 to"),
        ({"concurrency": 10**6}, "--concurrency is 1000000; it must be"),
        ({"soft_time_limit": 10, "time_limit": 5}, "--soft-time-limit is 10; it must be below --time-limit (5)"),
        ({"max_tasks_per_child": 0}, "--max-tasks-per-child is 0"),
        ({"max_memory_per_child": -1}, "--max-memory-per-child is -1"),
        ({"shutdown_grace": -1.0}, "--shutdown-grace is -1.0"),
        ({"time_limit": 0.0}, "--time-limit is 0.0"),
        ({"queues": [""]}, "-Q"),
    ],
)
def test_worker_options_are_checked_like_the_settings_they_override(options, message):
    queues = options.pop("queues", ["default"])
    with pytest.raises(ImproperlyConfigured) as refused:
        Worker(queues=queues, **options)
    assert message in str(refused.value)


def _taskworker(redis_url, tmp_path, *args, env=None):
    return WorkerProcess(redis_url, tmp_path, *args, env=env).start()


@pytest.mark.django_db(transaction=True)
def test_taskworker_refuses_to_start_on_a_bad_setting_or_option_and_says_why(redis_server, tmp_path):
    samples = [
        ({"PREFETCH": 0}, [], "DJTASKS['PREFETCH'] is 0; it must be from 1 to 1000."),
        ({"MAX_DELIVERIES": 0}, [], "DJTASKS['MAX_DELIVERIES'] is 0"),
        ({"CONCURRENCY": 0}, ["-c", "1"], "DJTASKS['CONCURRENCY'] is 0"),
        ({"MAX_TASKS_PER_CHILD": 0}, [], "DJTASKS['MAX_TASKS_PER_CHILD'] is 0"),
        ({"PREFIX": ""}, [], "DJTASKS['PREFIX']"),
        ({"SOFT_TIME_LIMIT": 10, "TIME_LIMIT": 5}, [], "DJTASKS['SOFT_TIME_LIMIT'] is 10; it must be below"),
        ({}, ["-c", "0"], "--concurrency is 0"),
        ({}, ["--time-limit", "5", "--soft-time-limit", "10"], "--soft-time-limit is 10.0; it must be below"),
        ({}, ["--max-tasks-per-child", "0"], "--max-tasks-per-child is 0"),
        ({}, ["--shutdown-grace", "-1"], "--shutdown-grace is -1.0"),
    ]
    processes = [
        (
            _taskworker(
                redis_server.url, tmp_path, *(args or ["-c", "1"]), env={"DJTASKS_TEST_SETTINGS": json.dumps(s)}
            ),
            message,
        )
        for s, args, message in samples
    ]
    try:
        for process, message in processes:
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                code = None
            assert code not in (None, 0), f"{message!r}: the worker started ({process.log()[-2000:]})"
            assert message in process.log(), process.log()[-2000:]
    finally:
        for process, _ in processes:
            process.kill()


ALIASED = {key: name for name, key in celeryconf.ALIASES.items() if key in INVALID}
ALIAS_CASES = [
    pytest.param(key, value, id=f"CELERY_{ALIASED[key].upper()}={value!r}"[:80])
    for key in sorted(ALIASED)
    for value in INVALID[key]
]


@pytest.mark.parametrize(("key", "value"), ALIAS_CASES)
def test_a_celery_alias_is_checked_like_its_djtasks_key_and_named_in_the_error(key, value):
    """The same wrong values through the Celery names (CELERY_TASK_ROUTES...): none slips past the checks."""
    django_name = f"CELERY_{ALIASED[key].upper()}"
    others = {k: v for k, v in settings.DJTASKS.items() if k != key}
    with override_settings(DJTASKS=others, **{django_name: value}):
        found = errors()
        assert found, f"{django_name}={value!r} passed the checks"
        assert all(error.hint for error in found), [(e.id, e.msg) for e in found]
        assert any(django_name in error.msg for error in found), [e.msg for e in found]
        with pytest.raises(ImproperlyConfigured, match=django_name):
            Worker(queues=["default"])
