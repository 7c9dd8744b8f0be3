"""What a worker prints, as a Celery user expects it: the banner, and a line for each task received and finished."""

import logging
import re

import pytest

from djtasks.management.commands.taskworker import quiet_django_task_lines
from djtasks.worker import tasklog
from tests.celeryapp.tasks import refuse, reveal
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, fail, flaky

pytestmark = [pytest.mark.django_db(transaction=True)]
SECRET = "s3cret-value-42"


def test_tasks_are_logged_received_succeeded_failed_and_retried(worker):
    process = worker()
    ok = add.delay(2, 6)
    bad = fail.delay("kaput")
    retried = flaky.delay("k", 2)
    assert ok.get(timeout=20) == 8
    with pytest.raises(ValueError):
        bad.get(timeout=20)
    retried.get(timeout=20)
    assert wait_for(lambda: f"flaky[{retried.id}] succeeded" in process.log(), timeout=10)
    log = process.log()
    assert f"Task tests.testapp.tasks.add[{ok.id}] received\n" in log
    assert re.search(rf"Task tests\.testapp\.tasks\.add\[{ok.id}\] succeeded in \d+\.\d+s: 8\n", log)
    failed = f"Task tests.testapp.tasks.fail[{bad.id}] failed: ValueError('kaput')\n"
    assert failed in log
    traceback = log.split(failed, 1)[1].splitlines()
    assert traceback[0] == "  Traceback (most recent call last):"
    assert "  ValueError: kaput" in traceback[:20]
    assert f"Task tests.testapp.tasks.flaky[{retried.id}] retry: Retry in 0.5s: ValueError('attempt 1 failed')" in log


def test_values_are_shown_redacted_shortened_and_escaped(worker):
    # Django's own django.tasks record of a failure carries its exception as Django writes it: not djtasks' to redact.
    process = worker(env={"DJTASKS_TEST_QUIET_DJANGO_LOG": "1"})
    shown = reveal.delay(1, password=SECRET)
    refused = refuse.delay(password=SECRET)
    assert shown.get(timeout=20)["password"] == SECRET
    with pytest.raises(ValueError):
        refused.get(timeout=20)
    big = add.delay("x" * 5000, "y")
    assert len(big.get(timeout=20)) == 5001
    # Each line is logged after its row's commit, by whichever child ran the task: the get()s can
    # return before it, and the children log in no set order. Wait for both lines.
    assert wait_for(lambda: f"[{big.id}] succeeded" in process.log(), timeout=10)
    assert wait_for(lambda: f"refuse[{refused.id}] failed" in process.log(), timeout=10)
    log = process.log()
    assert SECRET not in log
    assert f"reveal[{shown.id}] succeeded in" in log and "'password': '********'" in log and "'uses ********'" in log
    assert f"refuse[{refused.id}] failed: ValueError('wrong password ********\\nsecond line')" in log
    line = next(line for line in log.splitlines() if f"add[{big.id}] succeeded" in line)
    assert len(line) < 1200 and "xxx...xxx" in line


def test_nothing_is_formatted_when_the_level_is_off(monkeypatch):
    def explode(*args, **kwargs):
        raise AssertionError("formatted although the level is off")

    for name in ("_succeeded", "_failed", "_retrying"):
        monkeypatch.setattr(tasklog, name, explode)
    logger = logging.getLogger("djtasks")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # setLevel, not the attribute: it clears isEnabledFor's cache
    try:
        for state in ("SUCCESS", "FAILURE", "RETRY"):
            tasklog.finished(None, type("Outcome", (), {"state": state})())  # type: ignore[arg-type]
        tasklog.received([object()])  # type: ignore[list-item]
    finally:
        logger.setLevel(level)


def test_the_banner_names_the_transport_database_queues_pool_and_tasks(worker):
    process = worker("-Q", "default,emails", "-c", "3")
    assert wait_for(lambda: "[tasks]" in process.log(), timeout=30)
    assert add.delay(1, 1).get(timeout=20) == 2
    banner = process.log().split("[tasks]")[0]
    assert re.search(r"djtasks \S+ worker \S+ \(Django 6\.1", banner)
    assert ".> transport:   redis://127.0.0.1:" in banner
    assert ".> database:    default: sqlite " in banner or ".> database:    default: postgresql " in banner
    assert ".> concurrency: 3 (prefork" in banner
    assert "[queues]\n.> default\n.> emails\n" in banner
    tasks = process.log().split("[tasks]\n", 1)[1]
    assert "  . tests.testapp.tasks.add\n" in tasks and "  . tests.celeryapp.tasks.reveal\n" in tasks


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter22@redis.example:6379/0", "redis://:**@redis.example:6379/0"),
        ("rediss://app:hunter22@redis.example/1", "rediss://app:**@redis.example/1"),
        ("redis://redis.example:6379/0", "redis://redis.example:6379/0"),
        ("unix:///run/redis.sock?db=2&password=hunter22", "unix:///run/redis.sock?db=2&password=**"),
        ("redis://[::1:6379/0?password=hunter22", "redis://**"),
    ],
)
def test_the_banner_hides_the_redis_password(url, shown):
    from djtasks.worker.banner import hide_password

    assert hide_password(url) == shown and "hunter22" not in hide_password(url)


@pytest.mark.parametrize(
    ("configured", "parent", "option", "expected"),
    [
        (logging.NOTSET, logging.INFO, "WARNING", logging.WARNING),  # Django's default LOGGING: -l WARNING quiets
        (logging.NOTSET, logging.INFO, "INFO", logging.NOTSET),  # the default -l changes nothing
        (logging.NOTSET, logging.WARNING, "INFO", logging.NOTSET),  # -l never makes Django's lines louder
        (logging.INFO, logging.INFO, "ERROR", logging.INFO),  # a level LOGGING sets is the project's
    ],
)
def test_the_loglevel_quiets_djangos_task_lines_unless_logging_sets_their_level(
    monkeypatch, configured, parent, option, expected
):
    django_tasks, django = logging.getLogger("django.tasks"), logging.getLogger("django")
    monkeypatch.setattr(django, "level", parent)
    monkeypatch.setattr(django_tasks, "level", configured)
    logging.getLogger().manager._clear_cache()
    try:
        quiet_django_task_lines(option)
        assert django_tasks.level == expected
    finally:
        logging.getLogger().manager._clear_cache()
