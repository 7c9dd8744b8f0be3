"""Worker names (-n with Celery's expansions), unique among live workers; pid and log files."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
from django.core.management import call_command

from djtasks import control
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.naming import expand, node_name
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, shout

HOST = socket.gethostname()


def test_names_expand_celerys_codes():
    short, _, domain = "web1.example.com".partition(".")
    assert expand("%h|%n|%d|%i|%I|%%|%z", host="web1.example.com") == "web1.example.com|web1|example.com|0||%|%z"
    assert expand("%n%I.log", host="h", name="w1", index=2) == "w1-2.log"
    assert expand("%p.pid", host="h", name="w1") == "w1@h.pid"
    assert node_name("w1@%h") == f"w1@{HOST}"
    assert node_name("%h") == f"djtasks@{HOST}"  # a name without "@" is a host, as Celery reads it
    assert node_name("web1") == "djtasks@web1"
    assert node_name("worker.%i@%h") == f"worker.0@{HOST}", "the parent's index is 0"
    assert short == "web1" and domain == "example.com"


@pytest.mark.django_db(transaction=True)
def test_the_name_given_with_n_is_the_worker_everywhere(worker, capsys):
    process = worker("-n", "images1@%h", "-c", "1")
    name = f"images1@{HOST}"
    assert process.name == name
    assert wait_for(lambda: name in control.workers(), timeout=30), control.workers()
    row = TaskRecord.objects.get(pk=add.delay(2, 3).id)
    assert wait_for(lambda: TaskRecord.objects.get(pk=row.pk).state == "SUCCESS", timeout=20)
    assert TaskRecord.objects.get(pk=row.pk).worker == name, "the row names the worker, without a pid"
    [status] = control.status()
    assert status["worker"] == name and status["pid"] == process.pid and status["pool"] == "prefork"
    assert [r.worker for r in control.ping(timeout=5)] == [name]
    events = [json.loads(fields[b"e"]) for _, fields in get_broker().client.xrange(get_broker().events_key())]
    assert {event["worker"] for batch in events for event in batch} == {name}
    call_command("taskctl", "status")
    assert name in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_a_second_live_worker_with_the_same_name_is_refused(worker):
    first = worker("-n", "twin@%h", "-c", "1")
    assert wait_for(lambda: f"twin@{HOST}" in control.workers(), timeout=30)
    second = worker("-n", "twin@%h", "-c", "1")
    assert second.wait(timeout=30) == 1
    log = second.log()
    assert f"A worker named 'twin@{HOST}' is already running" in log and f"pid {first.pid}" in log
    assert first.process is not None and first.process.poll() is None, "the first keeps running"
    assert add.delay(1, 1).get(timeout=20) == 2


@pytest.mark.django_db(transaction=True)
def test_the_name_of_a_killed_worker_is_taken_over_at_once_by_its_restart(worker):
    first = worker("-n", "phoenix@%h", "-c", "1")
    assert wait_for(lambda: f"phoenix@{HOST}" in control.workers(), timeout=30)
    first.kill()  # SIGKILL: its claim on the name stays in Redis until it expires
    assert get_broker().client.exists(get_broker().name_key(f"phoenix@{HOST}"))
    again = worker("-n", "phoenix@%h", "-c", "1")
    assert wait_for(lambda: control.status() and control.status()[0]["pid"] == again.pid, timeout=30), again.log()
    assert "took over the name" in again.log()


@pytest.mark.django_db(transaction=True)
def test_pid_and_log_files_follow_celerys_templates_with_a_log_file_per_child(worker, tmp_path):
    process = worker(
        "-n", "logger@%h", "-c", "2", "--pidfile", f"{tmp_path}/run/%n.pid", "--logfile", f"{tmp_path}/log/%n%I.log"
    )
    pidfile = tmp_path / "run" / "logger.pid"
    assert wait_for(pidfile.exists, timeout=20)
    assert int(pidfile.read_text()) == process.pid
    # Each child opens its own log file when it starts (under load the second may start late).
    assert wait_for(lambda: len(list((tmp_path / "log").iterdir())) == 3, timeout=30)
    pids = {shout.delay(f"printed-{i}").get(timeout=20) for i in range(6)}
    logs = {path.name: path.read_text() for path in (tmp_path / "log").iterdir()}
    assert set(logs) == {"logger.log", "logger-1.log", "logger-2.log"}, logs.keys()
    assert "Worker logger@" in logs["logger.log"] and "printed-" not in logs["logger.log"]
    assert all(f"printed-{i}" in logs["logger-1.log"] + logs["logger-2.log"] for i in range(6))
    assert process.pid not in pids
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not pidfile.exists(), "a warm exit removes its pid file"


@pytest.mark.django_db(transaction=True)
def test_a_pid_file_naming_a_live_process_refuses_a_second_worker(worker, tmp_path):
    pidfile = tmp_path / "w.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test's own process: alive
    process = worker("-n", "pidded@%h", "--pidfile", str(pidfile))
    assert process.wait(timeout=30) == 1
    assert f"names process {os.getpid()}, which is running" in process.log()
    assert pidfile.read_text().strip() == str(os.getpid()), "not overwritten"


def events_of(name: str) -> list[dict]:
    broker = get_broker()
    batches = [json.loads(fields[b"e"]) for _, fields in broker.client.xrange(broker.events_key())]
    return [event for batch in batches for event in batch if event["worker"] == name and event["type"] != "x"]


@pytest.mark.django_db(transaction=True)
def test_events_follow_E_without_events_and_the_enable_and_disable_commands(worker, capsys):
    quiet = worker("-n", "quiet@%h", "-c", "1", "--without-events")
    loud = worker("-n", "loud@%h", "-c", "1", "-Q", "loud", "-E", env={"DJTASKS_ENABLE_EVENTS": "0"})
    assert wait_for(lambda: {quiet.name, loud.name} <= set(control.workers()), timeout=30)
    add.delay(1, 1).get(timeout=20)
    add.apply_async((2, 2), queue="loud").get(timeout=20)
    assert not [e for e in events_of(quiet.name) if e["type"].startswith("task-")]
    assert {"task-received", "task-succeeded"} <= {e["type"] for e in events_of(loud.name)}
    assert {row["worker"]: row["events"] for row in control.status()} == {quiet.name: False, loud.name: True}

    call_command("taskctl", "enable_events", "-d", quiet.name)
    assert "task events enabled" in capsys.readouterr().out
    add.delay(3, 3).get(timeout=20)
    assert wait_for(lambda: "task-succeeded" in {e["type"] for e in events_of(quiet.name)}, timeout=10)

    [reply] = control.disable_events(destination=[loud.name])
    assert reply.ok and reply.data == "task events disabled"
    seen = len(events_of(loud.name))
    add.apply_async((4, 4), queue="loud").get(timeout=20)
    time.sleep(1.0)
    assert len(events_of(loud.name)) == seen, "no event after disable_events"
    assert control.disable_events(destination=[loud.name])[0].data == "task events already disabled"
