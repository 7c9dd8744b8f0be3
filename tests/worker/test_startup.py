"""What a worker cannot fix by retrying stops it at start, with the reason; what may pass is waited for."""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from djtasks import control
from tests.conftest import point_djtasks_at
from tests.support.redisserver import RedisServer, free_port
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def protected(redis_server):
    server = RedisServer(password="right-password")
    server.start()
    yield server
    server.cleanup()
    point_djtasks_at(redis_server.url)


def start(url: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
    return WorkerProcess(url, tmp_path, "-c", "1", *args, env=env).start()


@pytest.mark.parametrize(
    ("password", "reason"),
    [(None, "Authentication required"), ("wrong-password", "invalid username-password pair")],
    ids=["none", "wrong"],
)
def test_a_worker_that_redis_refuses_exits_at_once_with_the_reason(protected, tmp_path, password, reason, fault_report):
    url = protected.url.replace("right-password", password) if password else f"redis://127.0.0.1:{protected.port}/0"
    process = start(url, tmp_path)
    try:
        began = time.monotonic()
        assert process.wait(timeout=30) == 1
        took = time.monotonic() - began
        assert took < 20, "not retried for long"
        log = process.log()
        assert "Redis refused this worker" in log and reason in log, log
        assert ". Check REDIS_URL" in log and ".." not in log
        said = "no password" if password is None else "a wrong password"
        fault_report(
            fault=f"worker started with {said} for Redis",
            enqueued=0,
            lost=0,
            ran_twice=0,
            recovery_s=took,
            notes="exit 1 with the reason (the time is the start-up to the exit)",
        )
    finally:
        process.kill()


def test_with_the_right_password_the_worker_runs_tasks(protected, tmp_path):
    point_djtasks_at(protected.url)
    process = start(protected.url, tmp_path)
    try:
        assert add.delay(20, 22).get(timeout=30) == 42
    finally:
        process.kill()


def test_a_redis_that_is_not_up_yet_is_waited_for_and_then_used(tmp_path, redis_server):
    port = free_port()
    process = start(f"redis://127.0.0.1:{port}/0", tmp_path)
    late = RedisServer(port=port)
    try:
        assert wait_for(lambda: "Redis does not answer yet" in process.log(), timeout=20), process.log()
        time.sleep(1.0)
        assert process.process is not None and process.process.poll() is None, "still waiting, not exited"
        late.start()
        point_djtasks_at(late.url)
        assert wait_for(lambda: process.name in control.workers(), timeout=30), process.log()
        assert add.delay(1, 2).get(timeout=30) == 3
    finally:
        process.kill()
        late.cleanup()
        point_djtasks_at(redis_server.url)


def test_a_database_the_worker_cannot_open_stops_it_at_start(redis_server, tmp_path):
    if connection.vendor == "sqlite":
        env = {"DJTASKS_DB_NAME": str(tmp_path / "no" / "such" / "folder" / "db.sqlite3")}
    else:
        env = {"DJTASKS_DB_NAME": f"no_such_database_{uuid.uuid4().hex[:8]}"}
    process = start(redis_server.url, tmp_path, env=env)
    try:
        assert process.wait(timeout=30) == 1
        log = process.log()
        assert "The worker cannot use its database ('default')" in log and "OperationalError" in log, log
    finally:
        process.kill()


@pytest.fixture
def password_role():
    """A PostgreSQL role that must give its password (scram), on the suite's trust-auth cluster."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no password")
    if os.environ.get("DJTASKS_TEST_PGBOUNCER"):
        pytest.skip("PostgreSQL's own password check: bin/test's direct PostgreSQL pass runs it, not the PgBouncer one")
    server = os.environ["DATABASE_URL"]
    role = f"djtasks_pw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as db:
        hba = db.execute("SHOW hba_file").fetchone()[0]
        original = Path(hba).read_text()
        Path(hba).write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
        db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
        db.execute("SELECT pg_reload_conf()")
    try:
        yield role
    finally:
        with psycopg.connect(server, autocommit=True) as db:
            Path(hba).write_text(original)
            db.execute("SELECT pg_reload_conf()")
            db.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_wrong_database_password_stops_the_worker_at_start(redis_server, tmp_path, password_role, fault_report):
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    url = parts._replace(netloc=f"{password_role}:wrong-password@{parts.hostname}:{parts.port}").geturl()
    began = time.monotonic()
    process = start(redis_server.url, tmp_path, env={"DATABASE_URL": url})
    try:
        assert process.wait(timeout=30) == 1
        took = time.monotonic() - began
        log = process.log()
        assert "The worker cannot use its database" in log and "password authentication failed" in log, log
        fault_report(
            fault="worker started with a wrong database password",
            enqueued=0,
            lost=0,
            ran_twice=0,
            recovery_s=took,
            notes="exit 1 with the reason (PostgreSQL, scram)",
        )
    finally:
        process.kill()
