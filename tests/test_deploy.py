"""The deployment as a user runs it: deploy/supervisord.conf with Redis, gunicorn and three named workers.

Everything runs in a temporary folder on free ports: its own redis-server, logs, media and
mail, and a database of its own (SQLite in that folder; on the PostgreSQL pass, a database
made for the test on bin/test's cluster). The test drives the site over HTTP as a browser would.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.support.redisserver import free_port

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "supervisord.conf"
VENV_BIN = Path(sys.executable).parent
FINAL = {"SUCCESS", "FAILURE", "REVOKED"}


class Browser:
    """Just enough of a browser: cookies, redirects, and the CSRF token of the last form seen."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf_token = ""

    def get(self, path: str) -> str:
        return self._open(urllib.request.Request(self.base_url + path))

    def post(self, path: str, fields: dict[str, str]) -> str:
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": self.csrf_token, **fields}).encode()
        return self._open(urllib.request.Request(self.base_url + path, data=data, headers={"Referer": self.base_url}))

    def submit(self, path: str, fields: dict[str, str]) -> str:
        """Load the page holding the form (for its CSRF token), then post the form."""
        self.get(path)
        return self.post(path, fields)

    def _open(self, request: urllib.request.Request) -> str:
        with self.opener.open(request, timeout=60) as response:
            page = response.read().decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if found:
            self.csrf_token = found.group(1)
        return page


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    tmp: Path
    var: Path
    url: str
    env: dict[str, str]
    postgres_url: str | None

    def rows(self, task_name: str) -> list[tuple[str, str]]:
        """(id, state) of every task row with this name, read straight from the demo's database."""
        query = "SELECT id, state FROM djtasks_task WHERE task_name = {} ORDER BY enqueued_at"
        params = [f"demo_site.social.tasks.{task_name}"]
        if self.postgres_url:
            with psycopg.connect(self.postgres_url) as db:
                return db.execute(query.format("%s"), params).fetchall()
        db = sqlite3.connect(self.var / "db.sqlite3", timeout=30)
        try:
            return db.execute(query.format("?"), params).fetchall()
        finally:
            db.close()

    def wait_for(self, task_name: str, count: int = 1, timeout: float = 90) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(task_name)
            if len(rows) >= count and all(state in FINAL for _, state in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{task_name}: rows {rows} not all finished after {timeout} s\n{self.logs()}")
            time.sleep(0.2)

    def worker_of(self, task_id: str, timeout: float = 60) -> str:
        """The worker that ran a task (once its row is finished), read from the demo's database."""
        query = "SELECT state, worker FROM djtasks_task WHERE id = {}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.postgres_url:
                with psycopg.connect(self.postgres_url) as db:
                    row = db.execute(query.format("%s"), [task_id]).fetchone()
            else:
                db = sqlite3.connect(self.var / "db.sqlite3", timeout=30)
                try:
                    row = db.execute(query.format("?"), [task_id]).fetchone()
                finally:
                    db.close()
            if row and row[0] in FINAL:
                return row[1]
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} not finished after {timeout} s")

    def logs(self) -> str:
        paths = sorted((self.var / "log").glob("*.log"))
        return "\n".join(f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}" for path in paths)


def processes_of(tmp: Path) -> list[psutil.Process]:
    """Processes that mention the temporary folder in their command line, environment or working directory.

    redis-server rewrites its title over its environment, but it runs in VAR_DIR/redis.
    """
    marker = str(tmp)
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            environment = "\0".join(f"{k}={v}" for k, v in process.environ().items())
            if marker in " ".join(process.info["cmdline"] or []) or marker in environment or marker in process.cwd():
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until_up(stack: Stack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if stack.process.poll() is not None:
            raise AssertionError(f"supervisord exited with {stack.process.returncode}\n{stack.logs()}")
        try:
            with urllib.request.urlopen(stack.url + "/", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the web server did not answer within {timeout} s\n{stack.logs()}")
        time.sleep(0.3)


@contextmanager
def own_database(var: Path) -> Iterator[tuple[str, str | None]]:
    """Yield (DATABASE_URL for the demo, PostgreSQL URL or None): a fresh database, dropped afterwards."""
    if os.environ.get("DJTASKS_TEST_DB") != "postgres":
        yield f"sqlite:///{var / 'db.sqlite3'}", None
        return
    # The demo gets the URL with its query (?disable_server_side_cursors=True through PgBouncer);
    # psycopg gets it without (it refuses Django's options).
    server_url = os.environ["DATABASE_URL"].split("?")[0]
    name = f"djtasks_deploy_{uuid.uuid4().hex[:12]}"
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url, url.split("?")[0]
    finally:
        with psycopg.connect(server_url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="djtasks-deploy-", ignore_cleanup_errors=True) as folder:
        var = Path(folder) / "var"
        with own_database(var) as (database_url, postgres_url):
            yield from run_stack(Path(folder), var, database_url, postgres_url)


def run_stack(tmp: Path, var: Path, database_url: str, postgres_url: str | None) -> Iterator[Stack]:
    for folder in ("log", "redis", "mail", "media"):
        (var / folder).mkdir(parents=True)
    redis_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "VENV": str(VENV_BIN.parent),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "VAR_DIR": str(var),
        "REDIS_PORT": str(redis_port),
        "WEB_PORT": str(web_port),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "demo_site.settings",
        "SECRET_KEY": "test-deploy-not-secret",
        "DEBUG": "True",
        "ALLOWED_HOSTS": "127.0.0.1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "SITE_URL": f"http://127.0.0.1:{web_port}",
        "SHUTDOWN_GRACE": "10",
        # Two readers (the writer and one follower) then make two delivery chunks.
        "FANOUT_CHUNK_SIZE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJTASKS_DB_NAME", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    process = subprocess.Popen(
        [str(VENV_BIN / "supervisord"), "-c", str(CONF)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack = Stack(process, tmp, var, f"http://127.0.0.1:{web_port}", env, postgres_url)
    try:
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        for leftover in processes_of(tmp):
            leftover.kill()


SEND_TO_WORKER2 = (
    "from djtasks import publisher; from demo_site.social.tasks import add; "
    "r = add.apply_async((2, 3), queue='worker2'); publisher.flush(); print(r.id)"
)


def manage(stack: Stack, *args: str) -> str:
    """Run a command as an operator would beside the stack: manage.py's, or supervisorctl."""
    command = [str(VENV_BIN / "supervisorctl"), "-c", str(CONF)] if args[0] == "supervisorctl" else None
    argv = [*command, *args[1:]] if command else [sys.executable, "manage.py", *args]
    done = subprocess.run(argv, cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 or command, f"{args}: exit {done.returncode}\n{done.stderr}"
    return done.stdout


def stop(stack: Stack) -> int:
    stack.process.send_signal(signal.SIGTERM)
    return stack.process.wait(timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_post_made_through_the_web_site_reaches_a_followers_timeline_and_the_stack_stops_cleanly(stack):
    wait_until_up(stack)
    # The demo runs on the database of this pass: its SQLite file exists only on the SQLite pass.
    assert (stack.var / "db.sqlite3").exists() == (stack.postgres_url is None)
    reader, writer = Browser(stack.url), Browser(stack.url)
    password = "a-long-Password-42"
    for browser, name in ((reader, "reader"), (writer, "writer")):
        page = browser.submit(
            "/signup/", {"username": name, "email": f"{name}@example.com", "password1": password, "password2": password}
        )
        assert f"Welcome, {name}!" in page

    reader.get("/u/writer/")
    page = reader.post("/u/writer/follow/", {})
    assert "You follow writer" in page
    page = writer.submit("/", {"body": "Hello followers, from supervisord"})
    assert "Posted;" in page

    [(_, state)] = stack.wait_for("fan_out_post")
    assert state == "SUCCESS"
    assert [state for _, state in stack.wait_for("deliver_post", count=2)] == ["SUCCESS", "SUCCESS"]
    assert "Hello followers, from supervisord" in reader.get("/")  # the reader's timeline

    [(_, state)] = stack.wait_for("send_follow_email")
    assert state == "SUCCESS"
    mails = "".join(path.read_text() for path in (stack.var / "mail").glob("*.log"))
    assert "reader now follows you" in mails and "To: writer@example.com" in mails

    [(_, state)] = stack.wait_for("reindex_post")
    assert state == "SUCCESS"
    assert "Hello followers, from supervisord" in reader.get("/search/?q=followers+supervisord")

    reader.submit("/reports/", {"days": "2"})
    [(report_id, state)] = stack.wait_for("build_activity_report")
    assert state == "SUCCESS"
    assert '"percent": 100.0' in reader.get(f"/tasks/{report_id}.json")

    # The numprocs pattern: worker1 and worker2 on default plus a queue of their own; emails on emails.
    host = socket.gethostname()
    status = manage(stack, "taskctl", "status", "--json")
    queues = {row["worker"]: row["queues"] for row in json.loads(status)}
    assert queues == {
        f"worker1@{host}": ["default", "worker1"],
        f"worker2@{host}": ["default", "worker2"],
        f"emails@{host}": ["emails"],
    }, status
    programs = manage(stack, "supervisorctl", "status")
    lines = {line.split()[0]: line.split()[1] for line in programs.splitlines() if line.strip()}
    assert lines["worker:worker1"] == lines["worker:worker2"] == lines["worker-emails"] == "RUNNING", programs
    sent = manage(stack, "shell", "-c", SEND_TO_WORKER2)
    task_id = sent.strip().splitlines()[-1]
    assert stack.worker_of(task_id) == f"worker2@{host}", stack.logs()

    # supervisord, redis-server, gunicorn's master and 2 workers, 3 taskworker parents and 3 children.
    running = sorted(p.name() for p in processes_of(stack.tmp))
    assert "supervisord" in running and "redis-server" in running and len(running) >= 11, running
    assert stop(stack) == 0
    assert processes_of(stack.tmp) == [], stack.logs()
