"""Bad settings fail the system checks with exact messages and hints."""

import pytest
from django.core import checks
from django.test import override_settings

from djtasks.checks import check_settings


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


@override_settings(DJTASKS={"REDACT_KEYS": ["password", ""]})
def test_redact_keys_must_be_non_empty_strings():
    [error] = check_settings()
    assert error.id == "djtasks.E007" and "REDACT_KEYS" in error.msg


@override_settings(DJTASKS={"REDACT_KEYS": "password"})
def test_redact_keys_given_as_one_string_is_a_type_error():
    [error] = check_settings()
    assert error.id == "djtasks.E003" and "list or tuple" in error.msg
