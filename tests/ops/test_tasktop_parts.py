"""tasktop's parts without a terminal: the board, the feed on a real Redis, the redacted detail, the actions.

tests/ops/test_tasktop.py drives the whole program under tmux; these try to break each part
with input nobody meant to send: generated event payloads, skewed clocks, secrets quoted in
exception text, a source that fails, a log handler on a real terminal (a pty).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djtasks.core.conf import get_settings
from djtasks.core.redact import MASK
from djtasks.management.commands import taskevents
from djtasks.models import TaskRecord
from djtasks.ops import control
from djtasks.ops.top import actions, detail, render, stream, terminal
from djtasks.ops.top.board import STATES, Board, Filters, TaskRow, printable
from djtasks.ops.top.feed import Feed, Heartbeats, Snapshot, Worker, start_id
from djtasks.transport import telemetry
from djtasks.transport.broker import get_broker
from tests.conftest import point_djtasks_at
from tests.support.workers import ROOT

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
KINDS = st.sampled_from(
    ["task-received", "task-started", "task-succeeded", "task-failed", "task-retried", "task-revoked"]
)
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "type": KINDS | JSON,
        "id": st.text(max_size=300) | JSON,
        "name": st.text() | JSON,
        "queue": st.text() | JSON,
        "worker": st.text() | JSON,
        "ts": st.floats() | JSON,
        "runtime": st.floats() | JSON,
    },
)


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(kind: str, task_id: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "id": task_id, "name": "app.tasks.add", "queue": "default", "worker": "w@h.1", **fields}


def test_a_task_goes_through_its_states_and_keeps_the_workers_runtime():
    clock = Clock()
    board = Board(clock=clock)
    board.ingest([event("task-received", "a"), event("task-started", "a")], arrived=clock.now)
    clock.now += 2
    assert board.rows()[0].state == "STARTED" and board.rows()[0].started_at == clock.now - 2
    board.ingest([event("task-succeeded", "a", runtime=0.25)], arrived=clock.now)
    [row] = board.rows()
    assert (row.state, row.runtime, row.worker, row.changed_at) == ("SUCCESS", 0.25, "w@h.1", clock.now)
    board.ingest([event("task-failed", "b")], arrived=None)  # history: no ts, so "now"; not counted
    assert board.throughput() == pytest.approx(1 / 2)  # one outcome in the 2 s since the board began
    clock.now += 30
    assert board.throughput() == 0.0


def test_history_takes_each_events_time_but_never_a_future_one():
    clock = Clock()
    board = Board(clock=clock)
    board.ingest(
        [event("task-received", "old", ts=clock.now - 50), event("task-received", "ahead", ts=clock.now + 500)],
        arrived=None,
    )
    rows = {row.id: row for row in board.rows()}
    assert rows["old"].seen_at == clock.now - 50 and rows["ahead"].seen_at == clock.now
    assert [row.id for row in board.rows()] == ["ahead", "old"]  # newest first


def test_the_board_keeps_its_newest_rows_and_drops_finished_ones_first():
    clock = Clock()
    board = Board(max_tasks=3, clock=clock)
    board.ingest([event("task-started", "running-old", ts=1.0)], arrived=None)
    for i in range(5):
        clock.now += 1
        board.ingest([event("task-succeeded", f"done-{i}")], arrived=clock.now)
    assert {row.id for row in board.rows()} == {"running-old", "done-3", "done-4"}


def test_the_record_settles_rows_still_open_here_and_nothing_else():
    board = Board()
    board.ingest(
        [event("task-started", "open"), event("task-succeeded", "done"), event("task-received", "waiting")], arrived=1.0
    )
    board.settle([("open", "REVOKED", "w@h.2", None), ("done", "FAILURE", "", 1.0), ("waiting", "PENDING", "", None)])
    rows = {row.id: row for row in board.rows()}
    assert (rows["open"].state, rows["open"].worker) == ("REVOKED", "w@h.2")
    assert rows["done"].state == "SUCCESS" and rows["waiting"].state == "RECEIVED"
    assert board.unfinished() == ["waiting"]


def test_filters_narrow_rows_and_events_and_cycle_through_states_and_queues():
    row = TaskRow("x", name="app.tasks.Send_Mail", queue="mail", state="FAILURE")
    assert Filters(state="FAILURE", queue="mail", name="send_mail").matches(row)
    assert not Filters(state="SUCCESS").matches(row) and not Filters(queue="default").matches(row)
    states = [Filters()]
    for _ in STATES:
        states.append(states[-1].next_state())
    assert [f.state for f in states] == ["", *STATES] and states[-1].next_state().state == ""
    assert Filters().next_queue({"b", "a"}).queue == "a" and Filters(queue="b").next_queue({"a", "b"}).queue == ""
    worker_event = {"type": "worker-heartbeat", "worker": "w"}
    assert Filters().matches_event(worker_event) and not Filters(name="add").matches_event(worker_event)
    assert Filters(state="FAILURE").matches_event(event("task-failed", "x"))
    assert not Filters(state="FAILURE").matches_event(event("task-succeeded", "x"))


@settings(max_examples=150, deadline=None)
@given(events=st.lists(EVENT | JSON, max_size=12), width=st.integers(20, 250))
def test_no_event_payload_breaks_the_board_or_the_screen_text(events, width):
    board = Board(max_tasks=5)
    valid = event("task-succeeded", "valid", runtime=0.5)
    board.ingest([*events, valid], arrived=None)
    rows = board.rows()
    assert any(row.id == "valid" and row.state == "SUCCESS" for row in rows)
    assert len(rows) <= 5 and all(isinstance(row.id, str) and 0 < len(row.id) <= 255 for row in rows)
    layout = render.columns(width)
    for row in rows:
        cells = render.task_cells(row, layout, now=board.clock())
        for (key, _, column_width), cell in zip(layout, cells, strict=True):
            assert cell.plain.isprintable(), cell.plain
            assert cell.cell_len <= column_width or key in ("runtime", "age"), (key, cell.plain)
        assert len(cells[4].plain) <= 7 and len(cells[5].plain) <= 5
    snapshot = Snapshot(tasks=tuple(rows), throughput=board.throughput(), taken_at=1.0)
    assert render.header(snapshot, Filters(), len(rows)).plain.isprintable()


def test_printable_escapes_control_characters_and_never_raises():
    assert printable("a\x1b[2J\nb\x00\ud800") == "a\\x1b[2J\\nb\\x00\\ud800"
    assert printable(None) == "" and printable({"a": 1}) == "{'a': 1}" and len(printable("x" * 10_000)) == 200


def test_the_stream_window_is_counted_on_redis_clock_in_entry_ids():
    assert start_id(None, 300) == "0" and start_id("1700000000000-5", None) == "0"
    assert start_id("1700000000000-5", 300) == "1699999700000-0"
    assert start_id("1700000000000-5", 0) == "1700000000000-5" and start_id("100-0", 300) == "0-0"


def test_heartbeat_ages_are_measured_here_whatever_the_workers_clock_says():
    clock = Clock(50.0)
    beats = Heartbeats(clock=clock)
    ahead = (datetime.now(UTC) + timedelta(seconds=120)).isoformat()
    behind = (datetime.now(UTC) - timedelta(seconds=7)).isoformat()
    assert beats.age("fast", ahead) == 0.0  # a clock ahead never makes a negative age
    assert beats.age("slow", behind) == pytest.approx(7, abs=1)
    clock.now += 3
    assert beats.age("fast", ahead) == 3.0  # unchanged heartbeat: it ages on this clock
    later = (datetime.now(UTC) + timedelta(seconds=123)).isoformat()
    assert beats.age("fast", later) == 0.0  # a new heartbeat: fresh, whatever its stamp
    assert beats.age("garbage", "not a time") is None and beats.age("naive", "2026-01-01T00:00:00") is None


def test_the_panels_fit_their_width_and_say_what_is_missing():
    workers = tuple(Worker(f"djtasks@host-{i}.{1000 + i}", "default,mail", "4", "2", "1234", 0.5) for i in range(9))
    panel = render.workers_panel(workers, 53, 6).plain.splitlines()
    assert len(panel) == 6 and panel[-1] == "… 5 more" and all(len(line) <= 53 for line in panel)
    assert panel[1].startswith("…sks@host-0.1000 default,ma…    4   2      1234   0s")
    assert "no worker online" in render.workers_panel((), 53, 6).plain
    queues = render.queues_panel((("default", 3, 1, 2),), 27, 6).plain.splitlines()
    assert queues[1].split() == ["default", "3", "1", "2"]


SECRETS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=4, max_size=40)
PATTERNS = ("password", "api_key", "token", "session")


def record_with_secrets(secret: str) -> TaskRecord:
    TaskRecord.objects.filter(pk="detail-1").delete()
    return TaskRecord.objects.create(
        id="detail-1",
        enqueued_at=datetime(2026, 1, 1, tzinfo=UTC),
        task_name="app.tasks.login",
        args=["ann", {"api_key": secret, "plain": "visible-arg"}],
        kwargs={"password": secret, "remember": True},
        result={"token": secret, "ok": 1},
        progress={"session": secret},
        state="FAILURE",
        exception_type="builtins.ValueError",
        exception_message=f"login failed for ann with {secret!r}",
        traceback=f'Traceback (most recent call last):\n  File "x.py"\n    login(password={secret!r})\nValueError',
    )


@pytest.mark.django_db(transaction=True)  # the monitor closes stale connections, as a thread should
def test_the_detail_shows_the_row_redacted_as_the_admin_does():
    text = detail.text_of(record_with_secrets("s3cret-Value"), PATTERNS)
    assert "s3cret" not in text
    assert '"password": "********"' in text and '"api_key": "********"' in text and '"token": "********"' in text
    assert (
        "visible-arg" in text
        and "login failed for ann with '********'" in text
        and "login(password='********')" in text
    )
    assert detail.describe("no-such-task").startswith("No row for task no-such-task")
    assert detail.describe("\x00") == "\\x00 cannot be a task id."


@pytest.mark.django_db(transaction=True)  # the monitor closes stale connections, as a thread should
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRETS)
def test_no_secret_value_reaches_the_detail_text(secret):
    baseline = detail.text_of(record_with_secrets(MASK), PATTERNS)
    text = detail.text_of(record_with_secrets(secret), PATTERNS)
    if secret in baseline or printable(secret, 10_000) in baseline:
        return  # the secret is a piece of the page itself (a label, the mask): nothing to tell apart
    assert secret not in text and printable(secret, 10_000) not in text
    assert all(line.isprintable() for line in text.splitlines())


@pytest.mark.django_db(transaction=True)  # the monitor closes stale connections, as a thread should
def test_the_feed_reads_the_recent_stream_and_goes_on_when_a_source_fails(redis_server, monkeypatch):
    broker = get_broker()
    telemetry.emit(broker, get_settings(), "task-succeeded", id="first", name="a.b", queue="default", worker="w")
    feed = Feed(Board(), since=300, refresh=0.2)
    snapshot = feed.poll()
    assert [row.id for row in snapshot.tasks] == ["first"] and not snapshot.catching_up and snapshot.error == ""

    def broken() -> list[dict[str, object]]:
        raise ValueError("unreadable heartbeat")

    monkeypatch.setattr(control, "status", broken)
    telemetry.emit(broker, get_settings(), "task-failed", id="second", name="a.b", queue="default", worker="w")
    snapshot = feed.poll()
    assert {row.id for row in snapshot.tasks} == {"first", "second"}
    assert snapshot.error == "workers: unreadable heartbeat"
    monkeypatch.undo()
    assert feed.poll().error == ""


def test_the_feed_says_redis_is_away_instead_of_dying(redis_server):
    point_djtasks_at("redis://127.0.0.1:1/0")
    try:
        snapshot = Feed(Board(), since=300, refresh=0.2).poll()
    finally:
        point_djtasks_at(redis_server.url)
    assert snapshot.error.startswith("events: ") and "queues: " in snapshot.error and snapshot.tasks == ()


def test_log_handlers_on_a_terminal_are_kept_off_the_screen_and_warnings_go_to_the_status_line():
    master, slave = os.openpty()
    tty = os.fdopen(slave, "w")
    handler = logging.StreamHandler(tty)
    logger = logging.getLogger("djtasks")
    logger.addHandler(handler)
    kept = logging.StreamHandler(io.StringIO())  # not a terminal: left alone
    logger.addHandler(kept)
    sink: deque[str] = deque()
    try:
        with terminal.logging_off_the_terminal(sink):
            logger.warning("Task id=%s lost", "x1")
            tty.flush()
            assert handler.stream is not tty
        assert list(sink) == ["warning: Task id=x1 lost"] and "x1 lost" in kept.stream.getvalue()
        assert handler.stream is tty
        logger.warning("after")
        tty.flush()
        assert os.read(master, 1000) == b"after\r\n"  # nothing from inside the block reached the terminal
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(kept)
        tty.close()
        os.close(master)


def test_columns_and_lines_are_hidden_while_the_screen_runs(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    with terminal.terminal_size_from_the_terminal():
        assert "COLUMNS" not in os.environ and "LINES" not in os.environ
    assert (os.environ["COLUMNS"], os.environ["LINES"]) == ("80", "24")


@pytest.mark.django_db(transaction=True)  # the monitor closes stale connections, as a thread should
def test_actions_answer_in_sentences_whatever_goes_wrong(redis_server):
    assert actions.revoke("\x00", terminate=False) == "\\x00 cannot be a task id"
    assert actions.revoke("no-such-task", terminate=True) == "no-such-… unknown"
    assert "is not a task registered" in actions.rate_limit("app.nowhere", "10/m")
    assert actions.rate_limit("tests.testapp.tasks.add", "fast").startswith("rate limit not changed: rate_limit 'fast'")
    assert actions.rate_limit("tests.testapp.tasks.add", "none") == (
        "0/0 workers confirmed rate limit the declared rate for tests.testapp.tasks.add"
    )
    point_djtasks_at("redis://127.0.0.1:1/0")
    try:
        assert "not changed" in actions.rate_limit("tests.testapp.tasks.add", "5/s")
    finally:
        point_djtasks_at(redis_server.url)


def test_the_command_refuses_an_unknown_state_and_says_when_textual_is_missing(monkeypatch):
    with pytest.raises(CommandError, match="'bogus' is not a state; choose one of RECEIVED, STARTED"):
        call_command("tasktop", state="bogus")
    monkeypatch.setattr(taskevents, "top", None)
    a_tty = SimpleNamespace(isatty=lambda: True)
    monkeypatch.setattr(taskevents, "sys", SimpleNamespace(stdin=a_tty, stdout=a_tty, stderr=a_tty))
    with pytest.raises(CommandError, match="the live screen needs Textual"):
        call_command("taskevents", top=True)


def test_the_line_dump_needs_no_textual(redis_server):
    telemetry.emit(get_broker(), get_settings(), "task-succeeded", id="plain-1", name="a.b", queue="q", worker="w")
    blocked = "import sys; sys.modules['textual'] = None; sys.modules['rich'] = None; "
    run = "from django.core.management import execute_from_command_line as run; "
    argv = "run(['manage.py', 'taskevents', '--no-follow', '--state', 'success', '--settings=tests.settings'])"
    env = {**os.environ, "REDIS_URL": redis_server.url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", blocked + run + argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "task-succeeded  a.b[plain-1]" in out.stdout


def test_unreadable_entries_at_the_end_of_the_stream_are_passed_not_read_again_and_again(redis_server):
    broker, client = get_broker(), redis_server.client()
    telemetry.emit(broker, get_settings(), "task-succeeded", id="before", name="a.b", queue="q", worker="w")
    client.xadd(broker.events_key(), {"e": b"\xff not json"})
    client.xadd(broker.events_key(), {"no": "payload"})
    cursor = stream.Cursor("0")
    assert [event["id"] for _, event in cursor.read(broker, block_ms=None)] == ["before"]
    assert cursor.read(broker, block_ms=None) == [] and cursor.after == broker.last_event_id() and cursor.skipped == 1
    began = time.monotonic()
    assert cursor.read(broker, block_ms=300) == []
    assert time.monotonic() - began >= 0.25  # it blocked in Redis: nothing unread is left behind it
    assert [event["id"] for _, event in stream.held(broker)] == ["before"]

    reads = []
    original = stream.events.read
    feed = Feed(Board(), since=300, refresh=0.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream.events, "read", lambda *a, **k: reads.append(1) or original(*a, **k))
        snapshot = feed.poll()
    assert [row.id for row in snapshot.tasks] == ["before"] and len(reads) <= 4, len(reads)


def test_a_refresh_longer_than_the_socket_timeout_waits_in_short_blocks(redis_server):
    assert get_settings().SOCKET_TIMEOUT < 4  # the suite's 3 s
    feed = Feed(Board(), since=0, refresh=4.0)
    began = time.monotonic()
    snapshot = feed.poll()
    assert snapshot.error == "" and time.monotonic() - began >= 3.9
