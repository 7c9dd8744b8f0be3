"""The monitor's pop-ups: one task's details, a line of input, a yes/no question."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class TaskScreen(ModalScreen[None]):
    """A task's row as text, scrollable; Esc, q or Enter closes it."""

    DEFAULT_CSS = """
    TaskScreen { align: center middle; }
    TaskScreen > VerticalScroll { width: 100%; height: 100%; border: round $accent; padding: 0 1; }
    TaskScreen .hint { height: 1; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q,enter", "close", "close")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("esc close · ↑↓ PgUp PgDn scroll"), classes="hint")
            yield Static(Text(self.text), id="detail")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line: Enter gives it, Esc gives None."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 90%; max-width: 100; height: auto; border: round $accent; padding: 0 1; }
    PromptScreen Static { height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, hint: str, value: str = ""):
        super().__init__()
        self.title_text, self.hint, self.value = title, hint, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.title_text, style="bold"))
            yield Input(value=self.value, placeholder=self.hint)
            yield Static(Text(f"{self.hint} · enter apply · esc cancel", style="dim"))

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y answers yes; n or Esc answers no."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: 90%; max-width: 100; height: auto; border: round $warning; padding: 0 1; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.question}\n\ny yes · n no"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
