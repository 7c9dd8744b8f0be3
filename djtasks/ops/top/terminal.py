"""What the screen needs from the terminal around it, and the entry point that runs it.

Log handlers that write to the terminal would scribble over the screen, so they are pointed
elsewhere while it runs (djtasks' warnings go to its status line); COLUMNS and LINES, when
exported, would pin Textual to one size, so they are hidden and the screen follows resizes.
"""

from __future__ import annotations

import io
import logging
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from djtasks.ops.top.app import TopApp
from djtasks.ops.top.board import Filters, printable


class _Messages(logging.Handler):
    def __init__(self, sink: deque[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(printable(f"{record.levelname.lower()}: {record.getMessage()}", 300))


@contextmanager
def logging_off_the_terminal(sink: deque[str]) -> Iterator[None]:
    """Keep log handlers from writing over the screen; djtasks' warnings go to the status line."""
    known = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and _is_terminal(stream):
                moved.append((handler, handler.setStream(io.StringIO())))
    messages = _Messages(sink)
    logging.getLogger("djtasks").addHandler(messages)
    try:
        yield
    finally:
        logging.getLogger("djtasks").removeHandler(messages)
        for handler, stream in moved:
            handler.setStream(stream)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def terminal_size_from_the_terminal() -> Iterator[None]:
    """Hide COLUMNS and LINES: set, they would pin the screen to one size and it would not follow resizes."""
    saved = {name: os.environ.pop(name) for name in ("COLUMNS", "LINES") if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def run(*, filters: Filters, since: float | None, refresh: float, max_tasks: int = 1000) -> int:
    """Run the screen until q; return its exit status."""
    app = TopApp(filters=filters, since=since, refresh=refresh, max_tasks=max_tasks)
    with logging_off_the_terminal(app.messages), terminal_size_from_the_terminal():
        app.run()
    return app.return_code or 0
