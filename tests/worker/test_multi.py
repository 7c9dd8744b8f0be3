"""taskmulti: Celery multi's command line, and named workers started, stopped and shown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from django.db import connection

from djtasks import control
from djtasks.models import TaskRecord
from djtasks.worker.multi import MultiError, nodes
from djtasks.worker.output import pid_in
from tests.support.waiting import wait_for
from tests.support.workers import ROOT
from tests.testapp.tasks import tracked_sleep, where

HOST = socket.gethostname()


def by_name(args: str) -> dict[str, list[str]]:
    return {node.name: node.argv() for node in nodes(args.split(), hostname="h")}


def test_a_count_makes_numbered_nodes_and_ranges_and_lists_give_them_their_own_options():
    found = by_name("3 -c 3 -Q:1-3 images,video -Q:4,5 data")
    assert list(found) == ["djtasks1@h", "djtasks2@h", "djtasks3@h"]
    for name, argv in found.items():
        assert argv == [
            "-n",
            name,
            "--pidfile=" + name.partition("@")[0] + ".pid",
            "--logfile=" + name.partition("@")[0] + "%I.log",
            "-c",
            "3",
            "-Q",
            "images,video",
        ]
    five = by_name("5 -c 3 -Q:1-3 images,video -Q:4,5 data -Q default")
    assert [argv[argv.index("-Q") + 1] for argv in five.values()] == ["images,video"] * 3 + ["data"] * 2


def test_named_nodes_take_options_by_name_index_or_list_and_words_after_the_double_dash():
    found = by_name("image video data -c 2 -c:1 10 -Q:image images -Q:video,data av --prefix=ignored -- -l DEBUG")
    assert list(found) == ["ignoredimage@h", "ignoredvideo@h", "ignoreddata@h"]
    image, video, data = found.values()
    assert image[image.index("-c") + 1] == "10" and video[video.index("-c") + 1] == "2"
    assert image[image.index("-Q") + 1] == "images" and data[data.index("-Q") + 1] == "av"
    assert image[-2:] == ["-l", "DEBUG"] and video[-2:] == ["-l", "DEBUG"]
    assert by_name("w1@web2 -E")["w1@web2"][-1] == "-E", "a full name keeps its host; a flag takes no value"


def test_pid_and_log_templates_expand_the_node_and_keep_the_process_index_for_the_worker():
    [node] = nodes(["w1", "--pidfile=/run/%n.pid", "--logfile=/log/%p-%n%I.log", "-n", "web1.example.com"])
    assert node.name == "w1@web1.example.com"
    assert node.pidfile == "/run/w1.pid"
    assert node.logfile == "/log/w1@web1.example.com-w1.log", "the parent's own file"
    assert "--logfile=/log/w1@web1.example.com-w1%I.log" in node.argv(), "each child expands %I itself"


@pytest.mark.parametrize("words", ["", "-c 2", "3 -c:0 1"])
def test_a_command_line_that_names_no_node_is_refused(words):
    with pytest.raises(MultiError):
        nodes(words.split())


def taskmulti(redis_server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_server.url,
        "DJTASKS_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "taskmulti", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_three_named_workers_each_consume_their_own_queue_and_stopwait_stops_them_warmly(redis_server, tmp_path):
    nodes_args = [
        "w1",
        "w2",
        "w3",
        "-c",
        "1",
        "-Q:w1",
        "q1",
        "-Q:w2",
        "q2",
        "-Q:w3",
        "q3,shared",
        f"--pidfile={tmp_path}/run/%n.pid",
        f"--logfile={tmp_path}/log/%n%I.log",
    ]
    names = [f"w{i}@{HOST}" for i in (1, 2, 3)]
    shown = taskmulti(redis_server, "show", *nodes_args)
    assert shown.returncode == 0 and f"-n w1@{HOST}" in shown.stdout and "-Q q3,shared" in shown.stdout
    started = taskmulti(redis_server, "start", *nodes_args)
    pids: list[int] = []
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.count(": OK (pid") == 3
        pids = [pid_in(f"{tmp_path}/run/w{i}.pid") or 0 for i in (1, 2, 3)]
        assert all(psutil.pid_exists(pid) for pid in pids)
        assert wait_for(lambda: set(names) <= set(control.workers()), timeout=30), control.workers()
        assert {row["worker"]: row["queues"] for row in control.status()} == dict(
            zip(names, [["q1"], ["q2"], ["q3", "shared"]], strict=True)
        )
        results = {queue: where.apply_async(("x",), queue=queue) for queue in ("q1", "q2", "q3", "shared")}
        for queue, result in results.items():
            assert result.get(timeout=30)["pid"] != 0, queue
        ran_on = {queue: TaskRecord.objects.get(pk=r.id).worker for queue, r in results.items()}
        assert ran_on == {"q1": names[0], "q2": names[1], "q3": names[2], "shared": names[2]}
        again = taskmulti(redis_server, "start", *nodes_args)
        assert again.stdout.count("already running") == 3, again.stdout

        stopped = taskmulti(redis_server, "stopwait", *nodes_args)
        assert stopped.returncode == 0 and stopped.stdout.count(": OK") == 3, stopped.stdout
        assert not any(psutil.pid_exists(pid) for pid in pids)
        assert not list((tmp_path / "run").iterdir()), "pid files removed"
        logs = {path.name for path in (tmp_path / "log").iterdir()}
        assert {"w1.log", "w1-1.log", "w2.log", "w3.log"} <= logs, logs
        assert "stopped (warm shutdown)" in (tmp_path / "log" / "w1.log").read_text()
        assert taskmulti(redis_server, "stop", *nodes_args).stdout.count("DOWN") == 3
    finally:
        for pid in pids:
            if psutil.pid_exists(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_node_that_cannot_start_is_reported_with_its_reason_and_kill_ends_the_others(redis_server, tmp_path):
    common = [f"--pidfile={tmp_path}/%n.pid", f"--logfile={tmp_path}/%n%I.log", "-c", "1"]
    good = taskmulti(redis_server, "start", "ok", *common)
    assert good.returncode == 0, good.stdout + good.stderr
    pid = pid_in(f"{tmp_path}/ok.pid")
    assert pid and psutil.pid_exists(pid)
    assert wait_for(lambda: len(psutil.Process(pid).children()) == 1, timeout=20)
    children = psutil.Process(pid).children()
    busy = tracked_sleep.delay(30)  # a child in a long task would run on, unleased, after its parent alone died
    assert wait_for(lambda: TaskRecord.objects.get(pk=busy.id).state == "STARTED", timeout=20)
    try:
        bad = taskmulti(redis_server, "start", "bad", *common, "--time-limit=5", "-P", "threads")
        assert bad.returncode == 1 and "FAILED (exit code 1)" in bad.stdout and "djtasks.E092" in bad.stdout
        # Refused at start-up, after its options were accepted (a live worker has its name): still
        # FAILED, and no pid file left behind.
        twin = [f"--pidfile={tmp_path}/twin-%n.pid", f"--logfile={tmp_path}/twin-%n%I.log", "-c", "1"]
        again = taskmulti(redis_server, "start", "ok", *twin)
        assert again.returncode == 1 and "FAILED (exit code 1)" in again.stdout, again.stdout
        assert "is already running" in again.stdout and not Path(f"{tmp_path}/twin-ok.pid").exists()
        killed = taskmulti(redis_server, "kill", "ok", *common)
        assert "Sending SIGKILL to node ok@" in killed.stdout
        assert wait_for(lambda: not psutil.pid_exists(pid), timeout=10)
        assert not psutil.wait_procs(children, timeout=5)[1], "the node's children are killed with it"
        assert not Path(f"{tmp_path}/ok.pid").exists()
    finally:
        if psutil.pid_exists(pid):
            os.killpg(pid, signal.SIGKILL)
