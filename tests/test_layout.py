"""The package layout is the architecture: layers import downwards only, without cycles.

Every import counts, those under TYPE_CHECKING and inside functions included, so a cycle
cannot hide behind a type-only or a deferred import.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "djtasks"
# Lower numbers are lower layers. A module may import its own layer's package and lower layers;
# two different packages of the same rank are independent siblings and may not import each other.
RANKS = {"core": 0, "transport": 1, "record": 1, "calling": 2, "periodic": 3, "worker": 4, "ops": 4}
EDGE_RANK = 5  # admin/, management/, backend, checks, apps, models, the public re-exports, __init__
MAX_LINES = 300
# What core may import besides itself: the standard library and Django.
CORE_THIRD_PARTY = {"django"}
# A function-local import is a cycle dodged; Django wants AppConfig.ready() to import late.
LOCAL_IMPORTS_ALLOWED = {"djtasks.apps"}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module name (djtasks.x.y) or a top-level distribution name
    line: int
    local: bool  # inside a function


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.relative_to(PACKAGE).parts
    }


MODULES = sources()


def _absolute(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(name: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    local_lines = {line for f in functions for line in range(f.lineno, (f.end_lineno or f.lineno) + 1)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, path.name == "__init__.py", node)
            # `from djtasks.core import registry` imports the module djtasks.core.registry.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found += [Import(name, target, node.lineno, node.lineno in local_lines) for target in targets]
    return found


IMPORTS = [found for name, path in MODULES.items() for found in imports_of(name, path)]


def layer(module: str) -> tuple[str, int]:
    """Return (package, rank) of a djtasks module: its layer, or the edges."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in RANKS:
        return parts[1], RANKS[parts[1]]
    return "edges", EDGE_RANK


def internal_edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for found in IMPORTS:
        if found.target in MODULES and found.target != found.importer:
            graph[found.importer].add(found.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(internal_edges()) == []


def test_layers_import_only_downwards() -> None:
    wrong = []
    for found in IMPORTS:
        if found.target not in MODULES:
            continue
        (own, rank), (other, target_rank) = layer(found.importer), layer(found.target)
        if own == other or rank == EDGE_RANK:
            continue
        if target_rank >= rank:
            wrong.append(f"{found.importer}:{found.line} ({own}) imports {found.target} ({other})")
    assert wrong == []


def test_only_the_transport_imports_redis() -> None:
    importers = sorted(
        f"{found.importer}:{found.line}"
        for found in IMPORTS
        if found.target.split(".")[0] == "redis" and layer(found.importer)[0] != "transport"
    )
    assert importers == []


def test_the_core_needs_only_the_standard_library_and_django() -> None:
    allowed = set(sys.stdlib_module_names) | CORE_THIRD_PARTY | {"__future__", "djtasks"}
    wrong = sorted(
        f"{found.importer}:{found.line} imports {found.target}"
        for found in IMPORTS
        if layer(found.importer)[0] == "core" and found.target.split(".")[0] not in allowed
    )
    assert wrong == []


def test_no_import_is_deferred_into_a_function() -> None:
    local = sorted(
        f"{found.importer}:{found.line} imports {found.target}"
        for found in IMPORTS
        if found.local and found.target.startswith("djtasks") and found.importer not in LOCAL_IMPORTS_ALLOWED
    )
    assert local == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_300_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(PACKAGE.parent)} has {lines} lines"


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    """The checks above can fail: a made-up graph with a cycle is caught, and so is core importing worker."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert layer("djtasks.core.conf") == ("core", 0) and layer("djtasks.worker.child") == ("worker", 4)
    assert layer("djtasks.admin.tasks") == ("edges", EDGE_RANK) and layer("djtasks.metrics") == ("edges", EDGE_RANK)
    node = ast.parse("from djtasks.worker import child\n").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute("djtasks.core.conf", False, node) == "djtasks.worker"
