"""Every code example of the documentation runs, so the pages cannot drift from the code.

Each page under docs/ is one test, and so is README.md. Its fenced code blocks run in order, by kind:

- ``pycon`` blocks are doctests and ``python`` blocks are executed, in one namespace per page
  (a block may use what an earlier block of its page imported), against a real worker started
  with docs/examples/settings.py, which installs the example app the pages import from
  (docs/examples/myapp);
- a ``python`` block whose first line names a file (``# myapp/tasks.py``, ``# urls.py``) is that
  module: executed as a fresh module of its own;
- a block whose first line is ``# settings.py`` is a settings fragment: executed, and its DJTASKS
  must pass the settings schema's checks;
- a block whose first line starts ``# not run:`` says why it cannot run (your own models, a
  placeholder): it must compile;
- ``sh`` blocks are shell commands: ``bash -n`` must parse them; ``ini`` blocks (supervisord's
  configuration) must parse as INI;
- ``text`` blocks are output and diagrams. A fence with any other language, or none, fails.
"""

from __future__ import annotations

import configparser
import dataclasses
import doctest
import io
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from djtasks import Task, control
from djtasks.core.conf import Settings
from djtasks.core.schema import problems
from tests.support.redisserver import RedisServer
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
sys.path.insert(0, str(EXAMPLES))  # the pages' `myapp`, as the worker's settings install it

KINDS = {"python", "pycon", "sh", "text", "ini"}
WORKER_QUEUES = "default,hipri,reports"
FILE_LINE = re.compile(r"# (?P<path>[\w./-]+\.py)\b")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.split("\n", 1)[0].strip()

    @property
    def kind(self) -> str:
        """One of: doctest, live, module, settings, not-run, shell, text."""
        if self.language == "pycon":
            return "doctest"
        if self.language == "sh":
            return "shell"
        if self.language in {"text", "ini"}:
            return self.language
        if self.first_line.startswith("# not run:"):
            return "not-run"
        match = FILE_LINE.match(self.first_line)
        if match:
            return "settings" if match["path"].endswith("settings.py") else "module"
        return "live"


def pages() -> list[Path]:
    """Every page of the docs, and the README's quick start."""
    found = [p for p in DOCS.rglob("*.md") if not p.is_relative_to(EXAMPLES) and "_build" not in p.parts]
    return sorted(found) + [ROOT / "README.md"]


def blocks(page: Path) -> list[Block]:
    found = []
    for token in MarkdownIt("commonmark").parse(page.read_text()):
        if token.type != "fence" or token.info.startswith("{"):  # {directive} fences are MyST's
            continue
        assert token.map is not None
        found.append(Block(page, token.map[0] + 1, token.info.strip(), token.content))
    return found


def test_every_fence_says_what_it_is() -> None:
    unknown = [f"{b.where}: {b.language!r}" for p in pages() for b in blocks(p) if b.language not in KINDS]
    assert not unknown, f"code blocks need one of the languages {sorted(KINDS)}: {unknown}"


def test_the_pages_have_examples_of_every_kind() -> None:
    kinds = {b.kind for p in pages() for b in blocks(p)}
    assert {"doctest", "live", "module", "settings", "shell"} <= kinds


def run_doctest(block: Block, namespace: dict) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, block.where, str(block.page), block.line - 1)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=out.write, clear_globs=False)
    namespace.update(test.globs)  # DocTest runs in a copy: later blocks see what this one made
    assert result.failed == 0, f"{block.where}: doctest failed\n{out.getvalue()}"


def run_module(block: Block) -> types.ModuleType:
    name = "docs_example_" + re.sub(r"\W", "_", f"{block.page.stem}_{block.line}")
    module = types.ModuleType(name)
    module.__file__ = f"<{block.where}>"
    sys.modules[name] = module
    exec(compile(block.code, block.where, "exec"), module.__dict__)
    return module


def run_settings(block: Block, tmp_path: Path) -> None:
    namespace = {"__name__": "settings", "BASE_DIR": tmp_path}
    exec(compile(block.code, block.where, "exec"), namespace)
    if "DJTASKS" in namespace:
        found = problems(namespace["DJTASKS"], Settings)
        assert not found, f"{block.where}: the DJTASKS shown fails the checks: {[str(p) for p in found]}"


def check_shell(block: Block) -> None:
    parsed = subprocess.run(["bash", "-n"], input=block.code, text=True, capture_output=True)
    assert parsed.returncode == 0, f"{block.where}: bash -n refuses it: {parsed.stderr}"


class DocsWorker(WorkerProcess):
    """A taskworker with the examples' settings (docs/examples/settings.py), so myapp is installed."""

    def start(self) -> DocsWorker:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "taskworker", "--settings=docs.examples.settings", *self.args],
            cwd=ROOT,
            env={**self.env, "DJANGO_SETTINGS_MODULE": "docs.examples.settings"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self


@pytest.fixture
def docs_worker(
    redis_server: RedisServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], DocsWorker]]:
    started: list[DocsWorker] = []

    def start() -> DocsWorker:
        process = DocsWorker(redis_server.url, tmp_path, "-c", "2", "-Q", WORKER_QUEUES).start()
        started.append(process)
        # Online (its heartbeat written) before the page runs: pages steer it with control.*.
        assert wait_for(control.status, timeout=30), f"the docs worker did not come up:\n{process.log()}"
        return process

    yield start
    for process in started:
        process.kill()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(f"--- docs worker log ---\n{process.log()[-5000:]}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_of_this_page_run(page: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    found = blocks(page)
    if any(b.kind in {"doctest", "live"} for b in found):
        request.getfixturevalue("docs_worker")()
    namespace: dict = {"__name__": f"docs_page_{page.stem}"}
    for block in found:
        kind = block.kind
        if kind == "doctest":
            run_doctest(block, namespace)
        elif kind == "live":
            exec(compile(block.code, block.where, "exec"), namespace)
        elif kind == "module":
            run_module(block)
        elif kind == "settings":
            run_settings(block, tmp_path)
        elif kind == "not-run":
            compile(block.code, block.where, "exec")
        elif kind == "shell":
            check_shell(block)
        elif kind == "ini":
            configparser.RawConfigParser().read_string(block.code, source=block.where)


def test_every_setting_has_its_entry_in_the_settings_reference() -> None:
    # The Sphinx extension fails the build too; this says which key, without building.
    page = (DOCS / "ref" / "settings.md").read_text()
    documented = re.findall(r"^```\{djtasks-setting\} (\w+)$", page, re.M)
    assert sorted(documented) == sorted(Settings.names())


def same(value: object) -> object:
    """A list and a tuple with the same items are the same setting (the schema accepts both)."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_settings_overview_shows_the_schema_defaults(tmp_path: Path) -> None:
    overview = next(b for b in blocks(DOCS / "ref" / "settings.md") if b.kind == "settings")
    namespace: dict = {"__name__": "settings", "BASE_DIR": tmp_path}
    exec(compile(overview.code, overview.where, "exec"), namespace)
    shown = namespace["DJTASKS"]
    assert set(shown) == Settings.names()
    defaults = Settings()
    # Computed per machine (the host name, the CPUs) or shortened on the page (REDACT_KEYS).
    differ = {"WORKER_NAME", "CONCURRENCY", "MAX_CONCURRENCY", "REDACT_KEYS"}
    wrong = {k: v for k, v in shown.items() if k not in differ and same(v) != same(getattr(defaults, k))}
    assert not wrong, f"docs/ref/settings.md shows defaults the schema does not have: {wrong}"


def test_the_readme_links_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", readme) if "://" not in t]
    assert targets, "the README links to the docs"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_the_task_options_table_lists_every_option_of_task() -> None:
    page = (DOCS / "topics" / "tasks.md").read_text()
    table = page[page.index("| `@task` option | default | meaning |") :].split("\n\n")[0]
    cells = [line.split("|")[1] for line in table.splitlines()[2:]]
    shown = {name for cell in cells for name in re.findall(r"`(\w+)`", cell)}
    # Django's own Task fields, set through django.tasks' API (using()) or named otherwise here.
    djangos = {"func", "backend", "queue_name", "run_after"}
    djangos.add("registered_name")  # what name= sets (Task.name is Django's)
    declared = {f.name for f in dataclasses.fields(Task) if f.init} - djangos
    accepted = declared | {"name", "queue", "celery_priority", "base"}
    assert declared <= shown, f"options missing from the table: {sorted(declared - shown)}"
    assert shown <= accepted, f"the table shows options @task does not take: {sorted(shown - accepted)}"
