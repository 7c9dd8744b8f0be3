"""The monitor's text: task table cells, the header, the workers and queues panels (Rich Text, no markup).

Every piece is built as rich.text.Text from plain strings, so a task name such as "[bold]" is
shown as written and never read as markup; widths are terminal cells, so wide characters fit.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

from djtasks.core.states import FAILURE, RETRY, REVOKED, STARTED, SUCCESS
from djtasks.ops.top.board import RECEIVED, Filters, TaskRow, printable
from djtasks.ops.top.feed import Snapshot, Worker

STATE_STYLES = {
    RECEIVED: "bold blue",
    STARTED: "bold cyan",
    SUCCESS: "green",
    FAILURE: "bold red",
    RETRY: "yellow",
    REVOKED: "magenta",
}
# (key, label, width); the name and worker columns share what the others leave.
FIXED = {"state": 8, "runtime": 7, "age": 5}
FULL_ID = 36
FULL_ID_FROM = 140  # terminal columns from which ids are shown whole
STALE_HEARTBEAT = 10.0  # seconds; an older heartbeat is shown in red
PADDING = 2  # the table's cell padding, per column
SCROLLBAR = 2


def fit(text: str, width: int, *, keep_end: bool = False, mark: str = "…") -> str:
    """Cut text to `width` terminal cells, marking the cut with an ellipsis (at the start if keep_end)."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    kept, used = [], cell_len(mark)
    for char in reversed(text) if keep_end else text:
        used += cell_len(char)
        if used > width:
            break
        kept.append(char)
    return mark + "".join(reversed(kept)) if keep_end else "".join(kept) + mark


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    for limit, form, size in (
        (10, "{:.3f}s", 1),
        (1000, "{:.1f}s", 1),
        (6000, "{:.1f}m", 60),
        (360_000, "{:.0f}h", 3600),
    ):
        if seconds < limit:
            return form.format(seconds / size)
    return ">99h"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    for limit, unit, size in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600), (86400_000, "d", 86400)):
        if seconds < limit:
            return f"{int(seconds // size)}{unit}"
    return ">999d"


def columns(width: int) -> list[tuple[str, str, int]]:
    """Return the task table's columns for a terminal `width` cells wide."""
    id_width = FULL_ID if width >= FULL_ID_FROM else 8
    spare = width - SCROLLBAR - 6 * PADDING - sum(FIXED.values()) - id_width
    spare = max(spare, 20)
    name = spare * 3 // 5
    return [
        ("state", "STATE", FIXED["state"]),
        ("name", "TASK", name),
        ("id", "ID", id_width),
        ("worker", "WORKER", spare - name),
        ("runtime", "RUNTIME", FIXED["runtime"]),
        ("age", "AGE", FIXED["age"]),
    ]


def task_cells(row: TaskRow, layout: list[tuple[str, str, int]], now: float) -> tuple[Text, ...]:
    widths = {key: width for key, _, width in layout}
    running = row.state == STARTED and row.started_at is not None
    runtime = now - row.started_at if running and row.started_at is not None else row.runtime
    values = {
        "state": Text(row.state, style=STATE_STYLES.get(row.state, "")),
        "name": Text(fit(row.name, widths["name"], keep_end=True)),
        "id": Text(fit(printable(row.id), widths["id"], mark="")),  # a prefix is enough to tell tasks apart
        "worker": Text(fit(row.worker or "-", widths["worker"], keep_end=True)),
        "runtime": Text(duration(runtime), justify="right"),
        "age": Text(age(now - row.changed_at), justify="right"),
    }
    return tuple(values[key] for key, _, _ in layout)


def header(snapshot: Snapshot, filters: Filters, shown: int) -> Text:
    line = Text("djtasks top", style="bold")
    line.append(f"  workers {len(snapshot.workers)}  tasks {shown}/{len(snapshot.tasks)}")
    line.append(f"  {snapshot.throughput:.1f}/s", style="bold")
    line.append(f"  [{filters.describe()}]", style="yellow" if filters else "dim")
    if snapshot.catching_up and snapshot.taken_at:
        line.append("  reading history…", style="dim")
    if snapshot.error:
        line.append(f"  {snapshot.error}", style="bold red")
    return line


def workers_panel(workers: tuple[Worker, ...], width: int, height: int) -> Text:
    """One line per worker: id, queues, concurrency, active, processed, heartbeat age."""
    spare = max(width - 26, 14)
    worker_w = spare * 5 // 8
    queues_w = spare - worker_w
    form = f"{{:<{worker_w}}} {{:<{queues_w}}} {{:>4}} {{:>3}} {{:>9}} {{:>4}}"
    out = Text(form.format("WORKER", "QUEUES", "CONC", "ACT", "PROCESSED", "HB")[:width], style="bold")
    if not workers:
        out.append("\nno worker online (no live heartbeat)", style="dim")
    rows = list(workers)
    if len(rows) > height - 1:
        rows = rows[: height - 2]
    for worker in rows:
        stale = worker.heartbeat_age is not None and worker.heartbeat_age > STALE_HEARTBEAT
        out.append("\n")
        line = form.format(
            fit(worker.id, worker_w, keep_end=True),
            fit(worker.queues, queues_w),
            fit(worker.concurrency, 4),
            fit(worker.active, 3),
            fit(worker.processed, 9),
            age(worker.heartbeat_age),
        )
        out.append(line[:width], style="red" if stale else "")
    if len(rows) < len(workers):
        out.append(f"\n… {len(workers) - len(rows)} more", style="dim")
    return out


def queues_panel(queues: tuple[tuple[str, int, int, int], ...], width: int, height: int) -> Text:
    """One line per queue: tasks ready, scheduled (delayed) and reserved by workers."""
    name_w = max(width - 18, 5)
    form = f"{{:<{name_w}}} {{:>5}} {{:>5}} {{:>5}}"
    out = Text(form.format("QUEUE", "READY", "SCHED", "RESV")[:width], style="bold")
    rows = list(queues)
    if len(rows) > height - 1:
        rows = rows[: height - 2]
    for name, ready, scheduled, reserved in rows:
        line = form.format(fit(name, name_w), *(fit(str(n), 5) for n in (ready, scheduled, reserved)))
        out.append("\n" + line[:width])
    if len(rows) < len(queues):
        out.append(f"\n… {len(queues) - len(rows)} more", style="dim")
    return out
