"""Bad settings fail the system checks with exact messages and hints."""

import pytest
from django.core import checks
from django.test import override_settings

from djtasks.checks import check_settings
from djtasks.schedules import crontab


def ids(messages):
    return [m.id for m in messages]


def test_the_test_settings_pass():
    assert check_settings() == []


@override_settings(DJTASKS={"REDIS_URLS": "redis://x"})
def test_an_unknown_key_is_an_error_with_the_known_keys_as_hint():
    [error] = check_settings()
    assert error.id == "djtasks.E002" and "REDIS_URLS" in error.msg and "REDIS_URL" in error.hint


@override_settings(DJTASKS={"MAX_DELIVERIES": "5"})
def test_a_wrong_type_is_an_error():
    [error] = check_settings()
    assert error.id == "djtasks.E003" and "int" in error.msg


@override_settings(DJTASKS={"REDIS_URL": "localhost:6379"})
def test_a_non_redis_url_is_an_error():
    assert ids(check_settings()) == ["djtasks.E004"]


@override_settings(DJTASKS={"LEASE_SECONDS": 120})
def test_a_lease_over_the_recovery_promise_is_an_error():
    assert ids(check_settings()) == ["djtasks.E006"]


@override_settings(TASKS={"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}})
def test_no_djtasks_backend_is_a_warning():
    assert ids(check_settings()) == ["djtasks.W001"]


@pytest.mark.django_db
def test_the_checks_run_with_manage_py_check():
    messages = checks.run_checks(tags=["djtasks"])
    assert [m for m in messages if m.level >= checks.ERROR] == []


@override_settings(DJTASKS={"BEAT_SCHEDULE": {"tick": {"task": "tests.testapp.tasks.add", "schedule": 1.0}}})
def test_a_good_beat_schedule_passes():
    assert check_settings() == []


@pytest.mark.parametrize(
    ("entry", "check_id", "message", "hint"),
    [
        (
            {"task": "tests.testapp.tasks.ad", "schedule": 30},
            "djtasks.E072",
            "DJTASKS['BEAT_SCHEDULE']['job'] names task 'tests.testapp.tasks.ad', which is not registered.",
            "Did you mean 'tests.testapp.tasks.add'?",
        ),
        (
            {"task": "tests.testapp.tasks.add", "schedule": "daily"},
            "djtasks.E073",
            "DJTASKS['BEAT_SCHEDULE']['job']: A schedule must be seconds, a timedelta, a datetime, crontab(...) "
            "or interval(...), not str.",
            "e.g. 'schedule': 30.0 or 'schedule': crontab(hour=3, minute=0).",
        ),
        (
            {"task": "tests.testapp.tasks.add", "schedule": crontab(hour=24)},
            "djtasks.E074",
            "DJTASKS['BEAT_SCHEDULE']['job']: crontab hour=24 is not a valid cron field.",
            "0-23, lists (3,15), ranges (9-17) and steps (*/2).",
        ),
        (
            {"task": "tests.testapp.tasks.add", "schedule": crontab(tz="Mars/Olympus")},
            "djtasks.E075",
            "DJTASKS['BEAT_SCHEDULE']['job']: crontab tz='Mars/Olympus' is not a known time zone.",
            None,
        ),
        (
            {"task": "tests.testapp.tasks.add", "every": 30},
            "djtasks.E071",
            "DJTASKS['BEAT_SCHEDULE']['job'] has unknown key(s) 'every'.",
            "Known keys: args, description, enabled, kwargs, options, schedule, task.",
        ),
    ],
)
def test_a_bad_beat_schedule_entry_is_an_error(entry, check_id, message, hint):
    with override_settings(DJTASKS={"BEAT_SCHEDULE": {"job": entry}}):
        [error] = check_settings()
    assert (error.id, error.msg) == (check_id, message)
    if hint is not None:
        assert error.hint == hint


@override_settings(DJTASKS={"BEAT_SCHEDULE": [("tick", {})]})
def test_a_beat_schedule_that_is_not_a_dict_is_an_error():
    [error] = check_settings()
    assert error.id == "djtasks.E003" and "BEAT_SCHEDULE" in error.msg and "dict" in error.msg


@override_settings(DJTASKS={"ROUTES": {"app.tasks.*": {"queues": "x"}, "app.tasks.b": "b"}})
def test_a_route_without_a_queue_is_an_error():
    [error] = check_settings()
    assert error.id == "djtasks.E007" and "app.tasks.*" in error.msg and "ROUTES" in error.hint


@override_settings(DJTASKS={"ROUTES": ["app.tasks.*"], "RESULT_EXPIRES": "1d"})
def test_routes_and_result_expires_have_types():
    assert ids(check_settings()) == ["djtasks.E003", "djtasks.E003"]


@override_settings(DJTASKS={"REDACT_KEYS": ["password", ""]})
def test_redact_keys_must_be_non_empty_strings():
    [error] = check_settings()
    assert error.id == "djtasks.E008" and "REDACT_KEYS" in error.msg


@override_settings(DJTASKS={"REDACT_KEYS": "password"})
def test_redact_keys_given_as_one_string_is_a_type_error():
    [error] = check_settings()
    assert error.id == "djtasks.E003" and "list or tuple" in error.msg


@override_settings(DJTASKS={"EVENTS_MAXLEN": 10, "METRICS_TOKEN": "short", "ENABLE_EVENTS": "yes"})
def test_a_tiny_events_stream_a_short_metrics_token_and_a_non_boolean_switch_are_errors():
    assert sorted(ids(check_settings())) == ["djtasks.E003", "djtasks.E081", "djtasks.E082"]
