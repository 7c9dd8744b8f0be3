"""The tasktop screen (Textual): the task table, the workers and queues panels, and the keys.

The feed runs in a thread and publishes snapshots; actions (open, revoke, rate limit) run one at
a time in a second thread, so a slow database or a 2 s control round trip never freezes the
screen. The screen polls both five times a second; nothing calls into it from another thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from djtasks.ops.top import actions, detail, render
from djtasks.ops.top.board import Board, Filters, TaskRow, printable
from djtasks.ops.top.feed import Feed, Snapshot
from djtasks.ops.top.screens import ConfirmScreen, PromptScreen, TaskScreen

MAX_SHOWN = 200  # table rows (newest first); the header counts them all
PANEL_HEIGHT = 6
QUEUES_WIDTH = 27  # at least; a quarter of a wider terminal
MAIN_ACTIONS = {"open", "revoke", "terminate", "rate_limit", "state", "queue", "name", "clear", "down", "up"}


class TaskTable(DataTable[Text]):
    """The task table; Enter opens the task under the cursor (and says so in the footer)."""

    BINDINGS = [
        Binding("enter", "select_cursor", "open"),
        Binding("home", "scroll_top", show=False),
        Binding("end", "scroll_bottom", show=False),
    ]


class TopApp(App[None]):
    TITLE = "djtasks top"
    ENABLE_COMMAND_PALETTE = False
    CSS = f"""
    #header {{ height: 1; background: $panel; }}
    #tasks {{ height: 1fr; }}
    #panels {{ height: {PANEL_HEIGHT}; background: $surface; }}
    #workers {{ width: 1fr; }}
    #queues {{ margin-left: 1; }}
    #status {{ height: 1; background: $panel; }}
    """
    BINDINGS = [
        Binding("r", "revoke", "revoke"),
        Binding("x", "terminate", "kill"),
        Binding("l", "rate_limit", "rate"),
        Binding("s", "state", "state"),
        Binding("u", "queue", "queue"),
        Binding("slash", "name", "name"),
        Binding("c", "clear", "clear"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("j", "down", show=False),
        Binding("k", "up", show=False),
    ]

    def __init__(self, *, filters: Filters, since: float | None, refresh: float, max_tasks: int = 1000):
        super().__init__()
        self.filters = filters
        self.feed = Feed(Board(max_tasks), since=since, refresh=refresh)
        self.snapshot = Snapshot()
        self.layout_width = 0
        self.worker_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tasktop-action")
        self.pending: list[tuple[Future[str], Callable[[str], object]]] = []
        self.messages: deque[str] = deque(maxlen=20)  # warnings logged while the screen is up

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield TaskTable(id="tasks", cursor_type="row")
        with Horizontal(id="panels"):
            yield Static(id="workers")
            yield Static(id="queues")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        threading.Thread(target=self.feed.run, name="tasktop-feed", daemon=True).start()
        self.set_interval(0.2, self.pull)
        self.query_one(DataTable).focus()
        self.say("reading the events stream…")
        self.show()

    def on_resize(self, event: events.Resize) -> None:
        self.show()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While a pop-up is open, the keys of the table do nothing.
        return not (action in MAIN_ACTIONS and isinstance(self.screen, ModalScreen))

    # What the threads hand over -------------------------------------------------------------

    def pull(self) -> None:
        for future, then in [item for item in self.pending if item[0].done()]:
            self.pending.remove((future, then))
            error = future.exception()
            then(f"failed: {error}" if error else future.result())
        while self.messages:
            self.say(self.messages.popleft())
        latest = self.feed.latest
        if latest.taken_at != self.snapshot.taken_at:
            if self.snapshot.catching_up and not latest.catching_up:
                self.say("live: enter opens a task, r revokes it, l sets its rate limit")
            self.snapshot = latest
            self.show()

    def submit(self, then: Callable[[str], object], function: Callable[..., str], *args: Any, **kw: Any) -> None:
        self.pending.append((self.worker_pool.submit(function, *args, **kw), then))

    def say(self, message: str) -> None:
        self.query_one("#status", Static).update(Text(f"{time.strftime('%H:%M:%S')} {message}"))

    # Drawing --------------------------------------------------------------------------------

    def show(self) -> None:
        table = self.query_one(DataTable)
        width = self.size.width
        layout = render.columns(width)
        selected = self.current()
        if width != self.layout_width:
            table.clear(columns=True)
            for key, label, column_width in layout:
                table.add_column(Text(label, style="bold"), width=column_width, key=key)
            self.layout_width = width
        else:
            table.clear()
        rows = [row for row in self.snapshot.tasks if self.filters.matches(row)]
        now = time.time()
        for row in rows[:MAX_SHOWN]:
            table.add_row(*render.task_cells(row, layout, now), key=row.id)
        ids = [row.id for row in rows[:MAX_SHOWN]]
        if selected is not None and selected.id in ids:
            table.move_cursor(row=ids.index(selected.id))
        self.query_one("#header", Static).update(render.header(self.snapshot, self.filters, len(rows)))
        queues_width = max(QUEUES_WIDTH, width // 4)
        workers = render.workers_panel(self.snapshot.workers, max(width - queues_width - 1, 20), PANEL_HEIGHT)
        self.query_one("#workers", Static).update(workers)
        queues = self.query_one("#queues", Static)
        queues.styles.width = queues_width
        queues.update(render.queues_panel(self.snapshot.queues, queues_width, PANEL_HEIGHT))

    def current(self) -> TaskRow | None:
        """Return the row under the cursor, as of the last snapshot."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((row for row in self.snapshot.tasks if row.id == key), None)

    # Keys -----------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.current()
        if row is None:
            self.say("no task selected")
            return
        self.submit(lambda text: self.push_screen(TaskScreen(text)), detail.describe, row.id)

    def action_revoke(self) -> None:
        self._revoke(terminate=False)

    def action_terminate(self) -> None:
        self._revoke(terminate=True)

    def _revoke(self, *, terminate: bool) -> None:
        row = self.current()
        if row is None:
            self.say("no task selected")
            return
        question = f"Revoke {row.name} [{printable(row.id)}]?"
        if terminate:
            question += "\nIf it is running, its child process is killed."

        def answered(yes: bool | None) -> None:
            if yes:
                self.say(f"revoking {printable(row.id)}…")
                self.submit(self.say, actions.revoke, row.id, terminate=terminate)

        self.push_screen(ConfirmScreen(question), answered)

    def action_rate_limit(self) -> None:
        row = self.current()
        if row is None:
            self.say("no task selected")
            return

        def entered(rate: str | None) -> None:
            if rate is not None:
                self.say(f"setting the rate limit of {row.name}…")
                self.submit(self.say, actions.rate_limit, row.name, rate)

        hint = "10/s, 10/m or 10/h; none: the declared rate"
        self.push_screen(PromptScreen(f"Rate limit of {row.name} (every worker)", hint), entered)

    def action_state(self) -> None:
        self._filter(self.filters.next_state())

    def action_queue(self) -> None:
        queues = {row.queue for row in self.snapshot.tasks} | {queue[0] for queue in self.snapshot.queues}
        self._filter(self.filters.next_queue(queues))

    def action_name(self) -> None:
        def entered(name: str | None) -> None:
            if name is not None:
                self._filter(replace(self.filters, name=name.strip()))

        hint = "part of a task name; empty: every task"
        self.push_screen(PromptScreen("Show the tasks whose name contains", hint, self.filters.name), entered)

    def action_clear(self) -> None:
        self._filter(Filters())

    def _filter(self, filters: Filters) -> None:
        self.filters = filters
        self.say(f"filter: {filters.describe()}")
        self.show()

    def action_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()

    async def action_quit(self) -> None:
        self.feed.stop()
        self.worker_pool.shutdown(wait=False, cancel_futures=True)
        self.exit(return_code=0)
