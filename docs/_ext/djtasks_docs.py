"""Sphinx directives that generate reference pages from djtasks itself, so they cannot drift.

``djtasks-setting``: one DJTASKS key (under a heading of the page): its type, valid values,
default and check ids, read from the settings schema (``djtasks.core.conf.Settings``); the
directive's content is the prose. The build
warns (an error under -W) about a key of the schema that no page documents, a documented name the
schema does not have, and a key documented twice.

``djtasks-command``: a management command's ``--help``, from its own argument parser; the build
warns about a command of djtasks/management/commands that no page documents.

Type hints name objects by the module that defines them (``djtasks.calling.canvas.Signature``);
the reference documents them under their public import path (``djtasks.Signature``). A reference
to the defining path resolves to the public one. The build warns about a name in the ``__all__``
of a public module (conf.py's ``djtasks_public_modules``) that the reference does not document,
unless conf.py's ``djtasks_left_out`` says why.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
from functools import cache
from pathlib import Path
from typing import Any

from django.core.management import find_commands, load_command_class
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

import djtasks
from djtasks.core.conf import Settings
from djtasks.core.schema import Key

logger = logging.getLogger(__name__)
COMMANDS = str(Path(djtasks.__file__).parent / "management")
_KEY = "djtasks"  # the field metadata holding a setting's Key (djtasks.core.schema.setting)


def schema_fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(Settings)}


def default_text(field: dataclasses.Field[Any], override: str | None) -> str:
    """Say a key's default: its value, or for a computed default the text the page gives."""
    if field.default_factory is dataclasses.MISSING:
        return repr(field.default)
    if override:
        return override
    value = field.default_factory()
    if value in ({}, [], ()):
        return repr(value)
    raise ValueError(f"DJTASKS[{field.name!r}] has a computed default: give it with :default:")


class SettingDirective(SphinxDirective):
    required_arguments = 1
    has_content = True
    option_spec = {"default": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        field = schema_fields().get(name)
        documented = self.env.domaindata.setdefault("djtasks", {}).setdefault("settings", {})
        if field is None:
            logger.warning("DJTASKS has no key %r (djtasks.core.conf.Settings)", name, location=self.get_location())
            return []
        if name in documented and documented[name] != self.env.docname:
            logger.warning("DJTASKS[%r] is documented twice", name, location=self.get_location())
        documented[name] = self.env.docname
        key: Key = field.metadata[_KEY]
        try:
            default = default_text(field, self.options.get("default"))
        except ValueError as error:
            logger.warning("%s", error, location=self.get_location())
            default = "?"
        checks = sorted({rule.check_id for rule in key.rules})
        facts = nodes.field_list()
        computed = "default" in self.options
        for label, value, literal in (
            ("Valid", key.describe(), False),
            ("Default", default, not computed),
            ("Checks", ", ".join(["djtasks.E003 (type)", *checks]), False),
        ):
            body = nodes.field_body()
            body += nodes.paragraph("", "", nodes.literal(text=value) if literal else nodes.Text(value))
            facts += nodes.field("", nodes.field_name(text=label), body)
        return [facts, *self.parse_content_to_nodes()]


class CommandDirective(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        self.env.domaindata.setdefault("djtasks", {}).setdefault("commands", {})[name] = self.env.docname
        command = load_command_class("djtasks", name)
        parser = command.create_parser("manage.py", name)
        out = io.StringIO()
        parser.print_help(out)
        text = out.getvalue().replace(parser.prog, f"python manage.py {name}", 1)
        block = nodes.literal_block(text, text, language="text")
        return [block]


@cache
def public_names(modules: tuple[str, ...]) -> dict[str, str]:
    """Map each public class's and function's defining path to its public import path."""
    names: dict[str, str] = {}
    for module_name in reversed(modules):  # djtasks itself wins over its submodules
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                names[f"{value.__module__}.{value.__qualname__}"] = f"{module_name}.{name}"
                names[value.__qualname__] = f"{module_name}.{name}"
    return names


def resolve_public(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    names = public_names(tuple(app.config.djtasks_public_modules))
    target = node["reftarget"]
    # A defining path, or a module that re-exports the class (djtasks.calling.result.GroupResult).
    public = names.get(target) or (names.get(target.rsplit(".", 1)[-1]) if target.startswith("djtasks.") else None)
    if public is None:
        return None
    alias = node.deepcopy()
    alias["reftarget"] = public
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], public, alias, contnode)


def check_every_setting(app: Sphinx, env: Any) -> None:
    documented = env.domaindata.get("djtasks", {}).get("settings", {})
    for name in sorted(set(schema_fields()) - set(documented)):
        logger.warning("DJTASKS[%r] is in the settings schema but no page documents it (djtasks-setting)", name)
    objects = env.get_domain("py").objects
    left_out = app.config.djtasks_left_out
    exports: dict[str, list[str]] = {}  # an object's id -> its public paths (djtasks.Retry, djtasks.exceptions.Retry)
    for module_name in app.config.djtasks_public_modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            exports.setdefault(str(id(getattr(module, name))), []).append(f"{module_name}.{name}")
    for paths in exports.values():
        if not any(path in objects or path in left_out for path in paths):
            logger.warning("%s is public (in __all__) but the API reference does not document it", paths[0])
    commands = env.domaindata.get("djtasks", {}).get("commands", {})
    for name in sorted(set(find_commands(COMMANDS)) - set(commands)):
        logger.warning("manage.py %s is a djtasks command but no page documents it (djtasks-command)", name)


def purge(app: Sphinx, env: Any, docname: str) -> None:
    for kind in ("settings", "commands"):
        documented = env.domaindata.get("djtasks", {}).get(kind, {})
        for name in [n for n, doc in documented.items() if doc == docname]:
            del documented[name]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("djtasks_public_modules", [], "env")
    app.add_config_value("djtasks_left_out", {}, "env")
    app.add_directive("djtasks-setting", SettingDirective)
    app.add_directive("djtasks-command", CommandDirective)
    app.connect("env-check-consistency", check_every_setting)
    app.connect("env-purge-doc", purge)
    app.connect("missing-reference", resolve_public)
    return {"version": "1", "parallel_read_safe": False, "env_version": 1}
