"""Celery's signals, with Celery's names and arguments, sent where Celery sends them (tests/celeryapp/receivers.py).

Every receiver of tests.celeryapp writes a JSON line to $DJTASKS_CELERY_SIGNALS: in this process
(the publish side) and in the worker's parent and children.
"""

import json
import logging
import signal
import time
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.tasks.signals import log_task_finished, log_task_started, task_finished, task_started

from djtasks import send_task, signals
from djtasks.calling import publishing
from djtasks.models import TaskRecord
from djtasks.worker import signalling
from djtasks.worker.outcome import Outcome
from tests.celeryapp.receivers import connect_publish_receivers, disconnect_publish_receivers
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, fail, flaky, mul, short_lived

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def heard(tmp_path, monkeypatch):
    path = tmp_path / "signals.jsonl"
    path.touch()
    monkeypatch.setenv("DJTASKS_CELERY_SIGNALS", str(path))

    def read(**match):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [line for line in lines if all(line.get(k) == v for k, v in match.items())]

    read.path = path
    connect_publish_receivers()
    yield read
    disconnect_publish_receivers()


def test_task_signals_are_sent_with_celery_arguments(worker, heard):
    process = worker(env={"DJTASKS_CELERY_SIGNALS": str(heard.path)})
    with transaction.atomic():
        ok = add.delay(2, 3)
        assert [s["signal"] for s in heard()] == ["before_task_publish"]  # after_task_publish waits for the commit
    bad = fail.delay("kaput")
    retried = flaky.delay("k", 2)
    assert ok.get(timeout=20) == 5
    with pytest.raises(ValueError):
        bad.get(timeout=20)
    retried.get(timeout=20)
    assert wait_for(lambda: len(heard(signal="task_postrun")) == 4, timeout=10)

    [before] = heard(signal="before_task_publish", sender="tests.testapp.tasks.add")
    assert before["body"][:2] == [[2, 3], {}] and before["routing_key"] == "default" and before["exchange"] == ""
    assert before["headers"]["id"] == ok.id and before["headers"]["task"] == "tests.testapp.tasks.add"
    [after] = heard(signal="after_task_publish", sender="tests.testapp.tasks.add")
    assert after["body"][:2] == [[2, 3], {}] and after["routing_key"] == "default"

    def of(task_id):
        return [s for s in heard() if s.get("task_id") == task_id or (s.get("request") or {}).get("id") == task_id]

    names = [s["signal"] for s in of(ok.id) if s["pid"] != before["pid"]]
    assert names == ["task_received", "task_prerun", "task_postrun"]
    [success] = [s for s in heard(signal="task_success") if s["result"] == 5]
    assert success["sender"] == "tests.testapp.tasks.add" and success["pid"] != before["pid"]
    prerun = next(s for s in of(ok.id) if s["signal"] == "task_prerun")
    assert prerun["args"] == [2, 3] and prerun["kwargs"] == {} and prerun["task"] == "Task"
    postrun = next(s for s in of(ok.id) if s["signal"] == "task_postrun")
    assert postrun["retval"] == 5 and postrun["state"] == "SUCCESS"

    [failure] = heard(signal="task_failure", task_id=bad.id)
    assert failure["exception"] == "ValueError: kaput" and failure["args"] == ["kaput"]
    assert failure["einfo"] == "ExceptionInfo" and failure["sender"] == "tests.testapp.tasks.fail"
    assert next(s for s in of(bad.id) if s["signal"] == "task_postrun")["state"] == "FAILURE"

    [retry] = heard(signal="task_retry")
    assert retry["request"]["id"] == retried.id and retry["request"]["retries"] == 0
    assert retry["reason"] == "ValueError: attempt 1 failed"

    worker_pid = process.pid
    assert [s["signal"] for s in heard(pid=worker_pid)][:3] == ["worker_init", "worker_ready", "beat_init"]
    assert len(heard(signal="worker_process_init")) == 2
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert heard(signal="worker_shutdown", pid=worker_pid)
    assert {s["exitcode"] for s in heard(signal="worker_process_shutdown")} == {0}
    assert len(heard(signal="worker_process_shutdown")) == 2


def test_receivers_that_raise_change_no_outcome(worker, heard, monkeypatch):
    failing = "before_task_publish,after_task_publish,task_received,task_prerun,task_success,task_postrun"
    monkeypatch.setenv("DJTASKS_CELERY_SIGNALS_RAISE", failing)
    process = worker(env={"DJTASKS_CELERY_SIGNALS": str(heard.path), "DJTASKS_CELERY_SIGNALS_RAISE": failing})
    results = [add.delay(i, i) for i in range(5)]
    assert [r.get(timeout=20) for r in results] == [0, 2, 4, 6, 8]
    assert TaskRecord.objects.filter(state="SUCCESS").count() == 5
    assert wait_for(lambda: len(heard(signal="task_postrun")) == 5, timeout=10)
    log = process.log()
    assert "Receiver record_task_prerun of signal task_prerun raised RuntimeError; ignored" in log
    assert "Receiver record_task_success of signal task_success raised RuntimeError; ignored" in log


def test_revoked_expired_and_unknown_tasks_are_signalled(worker, heard):
    expiring = short_lived.delay()
    unknown = send_task("tests.nowhere.task")
    time.sleep(1.0)  # past short_lived's expires=0.5 before any worker sees it
    worker(env={"DJTASKS_CELERY_SIGNALS": str(heard.path)})
    assert wait_for(lambda: heard(signal="task_revoked") and heard(signal="task_unknown"), timeout=20)
    [revoked] = heard(signal="task_revoked")
    assert revoked["request"]["id"] == expiring.id and revoked["expired"] is True and revoked["terminated"] is False
    [met] = heard(signal="task_unknown")
    assert (met["name"], met["id"]) == ("tests.nowhere.task", unknown.id)


def test_a_task_name_as_sender_matches_by_value(redis_server):
    called = []

    def receiver(sender, **kwargs):
        called.append(sender)

    name = ".".join(["tests", "testapp", "tasks", "add"])  # an equal string, not the same object
    signals.before_task_publish.connect(receiver, sender=name)
    try:
        add.delay(1, 1)
        mul.delay(1, 1)
    finally:
        assert signals.before_task_publish.disconnect(receiver, sender="tests.testapp.tasks.add")
    assert called == ["tests.testapp.tasks.add"]


def test_headers_added_before_publish_are_kept_and_bad_ones_refused(redis_server, caplog):
    def add_header(sender, headers, **kwargs):
        headers["trace_id"] = "abc-123"

    def bad_header(sender, headers, **kwargs):
        headers["handle"] = object()

    signals.before_task_publish.connect(add_header)
    try:
        kept = add.delay(1, 2)
        signals.before_task_publish.connect(bad_header)
        refused = add.delay(3, 4)
    finally:
        signals.before_task_publish.disconnect(add_header)
        signals.before_task_publish.disconnect(bad_header)
    assert TaskRecord.objects.get(pk=kept.id).headers == {"trace_id": "abc-123"}
    assert TaskRecord.objects.get(pk=refused.id).headers == {}
    assert "headers set by a before_task_publish receiver ignored" in caplog.text


def test_nothing_is_built_for_signals_nobody_listens_to(redis_server, monkeypatch):
    def explode(record):
        raise AssertionError("built although nobody listens")

    monkeypatch.setattr(publishing, "headers_of", explode)
    monkeypatch.setattr(publishing, "body_of", explode)
    for sig in (signals.before_task_publish, signals.after_task_publish):
        monkeypatch.setattr(sig, "receivers", [])
    with transaction.atomic():
        add.delay(1, 1)
    add.delay(2, 2)
    assert TaskRecord.objects.count() == 2


def test_django_task_signals_are_built_only_for_a_log_line_that_shows_or_another_receiver(monkeypatch):
    """Django's task_started/task_finished always have Django's own receiver, a log line: off, nothing is built."""
    built = []

    def build(record, task=None):
        built.append(record)
        return SimpleNamespace(id=record.id, status="SUCCESSFUL", task=task)

    monkeypatch.setattr(signalling, "to_task_result", build)
    for sig in (task_started, task_finished, *signalling._FINISHED):  # the test apps' receivers: not these
        monkeypatch.setattr(sig, "receivers", [])
    task_started.connect(log_task_started)
    task_finished.connect(log_task_finished)
    logger = logging.getLogger("django.tasks")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    monkeypatch.setattr(logger, "propagate", True)
    logger.manager._clear_cache()
    started = SimpleNamespace(record=SimpleNamespace(id="r1"), task=add)
    signalling.finished(started, Outcome(state="SUCCESS"), "w1")
    assert not signalling.started_listens() and built == []
    # A FAILURE is logged at ERROR: with the logger at WARNING, that line shows, so it is sent.
    signalling.finished(started, Outcome(state="FAILURE"), "w1")
    assert len(built) == 1
    heard = []

    def receiver(sender, task_result, **kwargs):
        heard.append(task_result.id)

    task_finished.connect(receiver)
    task_started.connect(receiver)
    signalling.finished(started, Outcome(state="SUCCESS"), "w1")
    assert signalling.started_listens() and heard == ["r1"]
    task_finished.disconnect(receiver)
    task_started.disconnect(receiver)
    del receiver
    assert not signalling.started_listens()
    logger.setLevel(logging.INFO)  # Django's line shows: sent again, with nobody else listening
    assert signalling.started_listens()
    signalling.finished(started, Outcome(state="SUCCESS"), "w1")
    assert len(built) == 3
