"""Sphinx configuration of the djtasks documentation (build: see docs/index.md, "Building these docs")."""

import os
import sys
from pathlib import Path

import django

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
# Autodoc imports djtasks, whose models need configured settings; the examples' settings are the
# test suite's plus the docs' example app (docs/examples/myapp).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs.examples.settings")
django.setup()

project = "djtasks"
author = "the djtasks authors"
copyright = "djtasks authors"
release = version = __import__("djtasks").__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "djtasks_docs",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "screenshots/*.txt", "requirements.txt", "README.md"]

html_theme = "furo"
html_title = f"djtasks {release}"
pygments_style = "friendly"
pygments_dark_style = "monokai"

# Nitpicky: every cross-reference to djtasks must resolve. References to Python's and Django's own
# objects (in signatures and type hints) cannot: the build runs offline, without their
# intersphinx inventories, so those targets, and only those, are let through.
nitpicky = True
# In docstrings, `Name` is a cross-reference (checked, as nitpicky makes every one), ``code`` is code.
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": False}
nitpick_ignore_regex = [
    ("py:.*", r"(builtins\.)?(str|int|float|bool|bytes|dict|list|tuple|set|frozenset|type|object|None|Ellipsis)"),
    ("py:.*", r"(typing|collections|collections\.abc|datetime|contextlib|enum|types|pathlib|decimal)\..*"),
    ("py:.*", r"(Any|Callable|Iterator|Iterable|Mapping|Sequence|TypeVar|ParamSpec|Generic|Self|timedelta|datetime)"),
    ("py:.*", r"(django|prometheus_client)(\..*)?"),
    ("py:.*", r"(Exception|BaseException|TypeError|ValueError|TimeoutError|RuntimeError|KeyError|LookupError)"),
]
# Type variables of generic signatures (Task[P, R], AsyncResult[R]...) are not objects to link to.
nitpick_ignore_regex += [("py:.*", r"[A-Z]|[A-Z]\.(args|kwargs)")]

# The public import paths: every name in their __all__ is documented in ref/api.md, or left out
# here with the reason (docs/_ext/djtasks_docs.py checks it).
djtasks_public_modules = [
    "djtasks",
    "djtasks.exceptions",
    "djtasks.states",
    "djtasks.control",
    "djtasks.schedules",
    "djtasks.metrics",
    "djtasks.testing",
    "djtasks.signals",
    "djtasks.publisher",
    "djtasks.overrides",
]
djtasks_left_out = {
    "djtasks.publisher.publish": "takes djtasks' internal Message objects",
    "djtasks.publisher.schedule": "takes TaskRecord rows; enqueueing does it",
    "djtasks.overrides.read_time_limits": "takes the internal Broker",
    "djtasks.metrics.render": "takes the internal Broker; the view calls it",
    "djtasks.metrics.DjtasksCollector": "the view's collector, built on the internal Broker",
}
