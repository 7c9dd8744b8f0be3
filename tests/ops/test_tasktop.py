"""tasktop for real: the terminal program in a detached tmux session, driven by keys, against a live worker.

Every assertion reads the screen with `tmux capture-pane`, polling until a pattern shows (the
machine is shared and loaded), and checks the database or Redis behind what the screen says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from django.db import connection

from djtasks import send_task
from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.support.workers import ROOT
from tests.testapp.tasks import add, fail, limited, record, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(300)]
SCREENSHOT = ROOT / "docs" / "screenshots" / "tasktop.txt"
SECRET = "hunter2-c0rrect-h0rse"


class Tmux:
    """One detached tmux session (its own server socket) running one command in an 80x24 pane."""

    def __init__(self, tmp_path: Path):
        self.socket = str(tmp_path / "tmux.sock")
        self.conf = tmp_path / "tmux.conf"
        self.status = tmp_path / "exit-status"
        # No status bar: the pane is the whole window. The pane stays after its program exits,
        # so its exit status can be read.
        self.conf.write_text("set -g status off\nset -g remain-on-exit on\nset -g default-terminal screen-256color\n")

    def run(self, *args: str) -> str:
        command = ["tmux", "-S", self.socket, "-f", str(self.conf), *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout

    def start(self, argv: list[str], env: dict[str, str], *, width: int = 80, height: int = 24, tail: str = "") -> None:
        options = [f"-e{name}={value}" for name, value in env.items()]
        self.run("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), "-c", str(ROOT), *options,
                 f"trap : INT; {shlex.join(argv)} {tail}; echo $? > {shlex.quote(str(self.status))}")  # fmt: skip

    def screen(self, *, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", "-t", "top", *(["-e"] if escapes else []))

    def keys(self, *keys: str) -> None:
        for key in keys:  # one at a time, as a person types
            self.run("send-keys", "-t", "top", key)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "top", "-l", text)

    def resize(self, width: int, height: int) -> None:
        self.run("resize-window", "-t", "top", "-x", str(width), "-y", str(height))

    def exit_status(self, timeout: float = 30.0) -> int:
        """Wait for the program to end and return its exit status.

        The pane's shell writes it to a file (tmux's own #{pane_dead_status} is sometimes
        empty); it traps SIGINT, which Ctrl-C sends to the whole foreground group, so only
        the program dies of it and the shell goes on to write the status.
        """
        assert wait_for(lambda: self.status.exists() and self.status.read_text().strip(), timeout), self.screen()
        return int(self.status.read_text())

    def wait(self, pattern: str, timeout: float = 60.0, *, absent: str | None = None) -> str:
        """Poll the screen until `pattern` (a regex) shows, and `absent` does not; return the screen."""
        return self.wait_until(
            lambda shown: bool(re.search(pattern, shown, re.M)) and not (absent and re.search(absent, shown, re.M)),
            timeout,
            pattern,
        )

    def wait_until(self, predicate: Callable[[str], bool], timeout: float = 60.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if predicate(shown):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{what!r} not on the screen within {timeout:g} s:\n{shown}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def tmux(tmp_path: Path):
    assert shutil.which("tmux"), "tmux is not installed (bin/test installs Debian's tmux)"
    session = Tmux(tmp_path)
    yield session
    session.kill()


def monitor_env(redis_url: str) -> dict[str, str]:
    """What the monitor needs to read the test database and the suite's redis-server."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "DJTASKS_DB_NAME": str(connection.settings_dict["NAME"]),
        "DJTASKS_TEST_RUN": os.environ.get("DJTASKS_TEST_RUN", "db"),
        "PYTHONUNBUFFERED": "1",
    }


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args, "--settings=tests.settings"]


def online(process) -> str:
    worker_id = process.name  # -n's name (djtasks@<host> by default), no pid appended
    assert wait_for(lambda: worker_id in get_broker().workers(), timeout=30)
    return worker_id


def table(shown: str) -> list[str]:
    """The task table's rows on a screen (the lines between the column titles and the panels)."""
    lines = shown.splitlines()
    top = next(i for i, line in enumerate(lines) if line.lstrip().startswith("STATE"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("WORKER"))
    return [line for line in lines[top + 1 : bottom] if line.strip()]


def colour_before(word: str, shown: str) -> str:
    """The last SGR escape sequence written before the first `word` on a screen captured with escapes."""
    before = shown[: shown.index(word)]
    return re.findall(r"\x1b\[[0-9;]*m", before)[-1]


def select(tmux: Tmux, task_id: str) -> None:
    """Put the cursor on the row of a task: to the top, then down to its line."""
    rows = table(tmux.wait(re.escape(task_id[:8])))
    index = next(i for i, row in enumerate(rows) if task_id[:8] in row)
    tmux.keys(*["k"] * len(rows), *["j"] * index)


def test_the_screen_shows_filters_opens_revokes_and_rate_limits_tasks(worker, tmux, ledger, redis_server):
    process = worker("-c", "3")
    worker_id = online(process)
    tmux.start(manage("tasktop", "--refresh", "0.5"), monitor_env(redis_server.url))
    tmux.wait(r"^djtasks top  workers 1 ")

    adds = [add.delay(i, i) for i in range(3)]
    failing = fail.delay("bad input")
    # Fails in the worker (no such argument); send_task, as delay() refuses it before writing (typing).
    signing_in = send_task(record.registered_name, kwargs={"key": "sign-in", "password": SECRET})
    throttled = limited.delay("throttled")
    later = add.apply_async((9, 9), countdown=600)
    naps = [sleep_then_record.delay(f"nap-{i}", 120) for i in (1, 2)]
    assert [a.get(timeout=60) for a in adds] == [0, 2, 4]
    # Rows with their states; the throughput counts what just finished; the panels show the worker and queue.
    tmux.wait(r"  (?!0\.0/s)\d+\.\d/s  ", timeout=30)
    shown = tmux.wait_until(lambda s: sum(row.lstrip().startswith("STARTED") for row in table(s)) == 2, 60, "naps")
    shown = tmux.wait(rf"FAILURE .*{failing.id[:8]}", timeout=30)
    rows = table(shown)
    assert sum(row.lstrip().startswith("SUCCESS") and ".add" in row for row in rows) == 3, shown
    assert later.id[:8] not in shown  # never received: no event names it yet
    bottom = "\n".join(shown.splitlines()[-8:])
    assert re.search(rf"{re.escape(process.name)}\s+default\s+3\s+\d+\s+\d+\s+\d+s", bottom), bottom
    assert re.search(r"default\s+\d+\s+1\s+\d+\s*$", bottom, re.M), bottom  # the delayed task: SCHED 1
    coloured = tmux.screen(escapes=True)
    assert colour_before("FAILURE", coloured) != colour_before("SUCCESS", coloured)
    assert colour_before("STARTED", coloured) not in (colour_before("SUCCESS", coloured), "\x1b[0m")

    # A filter by state narrows the table to that state.
    tmux.keys("s", "s", "s", "s")
    shown = tmux.wait(r"\[state=FAILURE\]")
    rows = table(shown)
    assert len(rows) == 2 and all(row.lstrip().startswith("FAILURE") for row in rows), shown
    tmux.keys("c")

    # Open a task: its arguments from its row, the password redacted; its exception from the row too.
    tmux.keys("/")
    tmux.wait("Show the tasks whose name contains")
    tmux.type("tasks.record")
    tmux.keys("Enter")
    tmux.wait(r"\[name~tasks.record\]")
    select(tmux, signing_in.id)
    tmux.keys("Enter")
    shown = tmux.wait(r'"password": "\*\*\*\*\*\*\*\*"')
    assert signing_in.id in shown and '"key": "sign-in"' in shown and "unexpected keyword argument" in shown
    assert "hunter2" not in shown
    tmux.keys("Escape")
    tmux.wait("STATE", absent="kwargs")

    # Revoke a sleeping task: its row and the database say REVOKED; it keeps running, its result is discarded.
    tmux.keys("c", "/")
    tmux.wait("Show the tasks whose name contains")
    tmux.type("sleep_then")
    tmux.keys("Enter")
    tmux.wait(r"\[name~sleep_then\]")  # the pop-up is gone: keys go to the table again
    assert wait_for(lambda: ledger.read_text().count("start nap-") == 2, timeout=60)
    select(tmux, naps[0].id)
    tmux.keys("r")
    tmux.wait(rf"Revoke .*\n.*{naps[0].id[:20]}|Revoke .*{naps[0].id[:20]}")
    tmux.keys("y")
    shown = tmux.wait(rf"{naps[0].id[:8]}… revoked; it is running and its result will be discarded")
    tmux.wait(rf"REVOKED .*{naps[0].id[:8]}")
    assert wait_for(lambda: TaskRecord.objects.get(pk=naps[0].id).state == "REVOKED", timeout=10)

    # Revoke and terminate the other: REVOKED, and the child that ran it is killed.
    [child_pid] = [int(line.split()[2]) for line in ledger.read_text().splitlines() if line.startswith("start nap-2")]
    select(tmux, naps[1].id)
    tmux.keys("x")
    tmux.wait("child process is killed")
    tmux.keys("y")
    tmux.wait(rf"{naps[1].id[:8]}… revoked; terminating it")
    tmux.wait(rf"REVOKED .*{naps[1].id[:8]}")
    assert wait_for(lambda: TaskRecord.objects.get(pk=naps[1].id).state == "REVOKED", timeout=10)
    assert wait_for(lambda: not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == "zombie")
    assert "end nap-" not in ledger.read_text()

    # Set a task's rate limit: every worker confirms, and the override is in Redis.
    tmux.keys("c", "/")
    tmux.wait("Show the tasks whose name contains")
    tmux.type("limited")
    tmux.keys("Enter")
    tmux.wait(r"\[name~limited\]")
    select(tmux, throttled.id)
    tmux.keys("l")
    tmux.wait("Rate limit of tests.testapp.tasks.limited")
    tmux.type("10/m")
    tmux.keys("Enter")
    tmux.wait(r"1/1 workers confirmed rate limit 10/m for tests.testapp.tasks.limited")
    assert get_broker().rate_override(limited.registered_name) == 6000.0  # ms between starts

    # Resize: a bigger terminal shows whole names and more rows; back at 80x24 everything fits again.
    tmux.keys("c")
    tmux.resize(120, 40)
    shown = tmux.wait(r"  tests\.testapp\.tasks\.sleep_then_record  ")
    assert len(shown.splitlines()) == 40 and worker_id in shown
    tmux.resize(80, 24)
    shown = tmux.wait(r"…sks\.sleep_then_record", absent=r"  tests\.testapp\.tasks\.sleep_then_record  ")
    lines = shown.splitlines()
    assert len(lines) == 24 and lines[0].startswith("djtasks top") and "q quit" in lines[-1], shown
    SCREENSHOT.write_text(shown.rstrip("\n") + "\n")

    tmux.keys("q")
    assert tmux.exit_status() == 0


def test_hostile_events_are_shown_as_text_and_never_stop_the_screen(worker, tmux, redis_server):
    online(worker())
    client, key = redis_server.client(), get_broker().events_key()
    hostile = [
        {"type": "task-failed", "id": "evil-1", "name": "[b]x[/]\x1b[2J", "queue": ["q"], "ts": 1e9,
         "runtime": 1e308, "worker": {"w": 1}},
        {"type": "task-failed", "id": "evil-nan", "ts": "NaN"},  # no time: the transport skips it
        {"type": ["task-received"], "id": "evil-2"},
        {"type": "task-started", "id": "\x00nul"},
        {"type": "task-started", "id": "x" * 1000},
        {"type": "task-succeeded", "id": 12345, "name": "numbers"},
        {"type": "task-retried", "id": "evil-3", "runtime": "soon", "ts": -1e30},
    ]  # fmt: skip
    client.xadd(key, {"e": json.dumps(hostile)})
    client.xadd(key, {"e": b"\xff\xfe not json"})
    client.xadd(key, {"other": "field"})
    client.xadd(key, {"e": "[1, 2, null]"})
    tmux.start(manage("taskevents", "--top", "--refresh", "0.5"), monitor_env(redis_server.url))
    shown = tmux.wait(r"FAILURE .*\\x1b\[2J")
    assert "[b]x[/]\\x1b[2J" in shown and re.search(r"RETRY .*evil-3", shown)
    assert "evil-2" not in shown and "numbers" not in shown and "xxxxxxxx" not in shown
    assert "evil-nan" not in shown
    assert add.delay(20, 22).get(timeout=60) == 42  # real events keep coming after the garbage
    tmux.wait(r"SUCCESS .*tasks\.add ")
    tmux.keys("q")
    assert tmux.exit_status() == 0


def collect(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)


def _ctrl_c_stops() -> None:
    """SIGINT as a terminal's Ctrl-C meets it: a test run started in the background (`cmd &` in a
    script, nohup) has SIGINT ignored, and its children would inherit that and never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_without_a_terminal_it_prints_event_lines_with_the_same_filters(worker, redis_server):
    online(worker())
    assert add.delay(1, 1).get(timeout=60) == 2
    failing = fail.delay("no terminal")
    assert wait_for(lambda: TaskRecord.objects.get(pk=failing.id).state == "FAILURE", timeout=60)
    env = {**os.environ, **monitor_env(redis_server.url)}
    for command in ("tasktop", "taskevents --top"):
        argv = manage(*command.split(), "--since", "600", "--state", "failure")
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_stops
        )
        lines: list[str] = []
        threading.Thread(target=collect, args=(process, lines), daemon=True).start()
        try:
            assert wait_for(lambda got=lines: any(failing.id in line for line in got), timeout=60), lines
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
        assert re.search(r"stdout(, stderr)? not a terminal: printing events line by line", errors), errors
        assert lines and all(" task-failed " in line for line in lines), lines


def test_with_stderr_redirected_the_terminal_gets_lines_instead_of_a_broken_screen(
    worker, tmux, redis_server, tmp_path
):
    """Textual draws on stderr: with stderr in a file the screen would land there, so lines go to the terminal."""
    online(worker())
    assert add.delay(2, 3).get(timeout=60) == 5
    errors = tmp_path / "errors.txt"
    argv = manage("tasktop", "--since", "600", "--name", "tasks.add")
    tmux.start(argv, monitor_env(redis_server.url), tail=f"2>{shlex.quote(str(errors))}")
    shown = tmux.wait(r" task-succeeded +tests\.testapp\.tasks\.add\[")
    assert "djtasks top" not in shown and "task-received" in shown
    assert "stderr not a terminal: printing events line by line" in errors.read_text()
    tmux.keys("C-c")
    assert tmux.exit_status() == 0
