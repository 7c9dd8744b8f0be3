from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from djtasks.core.conf import get_settings
from djtasks.transport.broker import close_broker
from tests.support.redisserver import RedisServer
from tests.support.workers import WorkerProcess


def point_djtasks_at(url: str) -> None:
    settings.DJTASKS = {**settings.DJTASKS, "REDIS_URL": url}
    get_settings.cache_clear()
    close_broker()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    os.environ["REDIS_URL"] = server.url
    point_djtasks_at(server.url)
    yield server
    close_broker()
    server.cleanup()


@pytest.fixture(autouse=True)
def clean_redis(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that use Redis start with our private server empty and running."""
    if "redis_server" not in request.fixturenames and "worker" not in request.fixturenames:
        yield
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    if server.process is None or server.process.poll() is not None:
        server.start()
    point_djtasks_at(server.url)
    server.client().flushall()
    yield


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("DJTASKS_LEDGER", str(path))
    return path


@pytest.fixture
def worker(
    redis_server: RedisServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start taskworker subprocesses; every one is killed (its whole process group) afterwards.

    Killed, not warm-stopped: the test is over, its database rows and Redis keys are wiped
    before the next test, and a warm stop would wait for idle children's one-second wait for
    work (or a running task's grace period) after every test. Tests of shutdown stop their
    workers themselves (WorkerProcess.stop, signal).
    """
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        if started and not {"-n", "--hostname"} & set(args):
            # Worker names are unique: a second worker of a test is named (the first keeps the default).
            args = ("-n", f"djtasks{len(started) + 1}@%h", *args)
        process = WorkerProcess(redis_server.url, tmp_path, *args, env=env).start()
        started.append(process)
        return process

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for process in started:
        process.kill()
        if failed:
            print(f"--- worker {process.pid} log ---\n{process.log()[-5000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


FAULT_ROWS: list[dict[str, object]] = []


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record one row of the fault table printed at the end of the run."""

    def add(**row: object) -> None:
        # On the test's report: under pytest-xdist it travels from the worker process to the
        # controller, which prints the table (pytest_runtest_logreport below collects it).
        request.node.user_properties.append(("fault_row", {"test": request.node.name, **row}))

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        FAULT_ROWS.extend(value for name, value in report.user_properties if name == "fault_row")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if not FAULT_ROWS:
        return
    db = os.environ.get("DJTASKS_TEST_DB", "sqlite")
    terminalreporter.section(f"fault suite ({db})")
    header = f"{'fault':<46} {'enqueued':>8} {'lost':>5} {'ran twice':>9} {'recovery':>9}  notes"
    terminalreporter.write_line(header)
    for row in FAULT_ROWS:
        recovery = row.get("recovery_s")
        terminalreporter.write_line(
            f"{str(row['fault']):<46} {row['enqueued']:>8} {row['lost']:>5} {row['ran_twice']:>9} "
            f"{(f'{recovery:.1f} s' if isinstance(recovery, float) else '-'):>9}  {row.get('notes', '')}"
        )
