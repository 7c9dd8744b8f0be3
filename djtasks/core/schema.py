"""How a DJTASKS key is declared (types, default, rules) and how a DJTASKS dict is checked against them.

conf.Settings declares every key once, with setting(): the settings object takes its defaults
from there and the system checks its types and rules, through problems().
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

NoneType = type(None)
NUMBER = (int, float)
_KEY = "djtasks"  # where a field's metadata holds its Key


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the DJTASKS setting, as a system check reports it."""

    check_id: str
    message: str
    hint: str | None = None


class Check(Protocol):
    def problems(self, key: str, value: Any, values: Mapping[str, Any]) -> list[Problem]:
        """Report what is wrong with a key's value; values holds every key's well-typed value."""
        ...


@dataclass(frozen=True, slots=True)
class Rule:
    """A condition a key's value meets unless it is None; message may name {key} and {value}."""

    holds: Callable[[Any], bool]
    check_id: str
    message: str
    hint: str | None = None

    def problems(self, key: str, value: Any, values: Mapping[str, Any]) -> list[Problem]:
        if value is None or self.holds(value):
            return []
        return [Problem(self.check_id, self.message.format(key=key, value=value), self.hint)]


@dataclass(frozen=True, slots=True)
class EachItem:
    """A condition every item of a dict-valued key meets; message may name {key}, {name} and {value}."""

    holds: Callable[[Any, Any], bool]
    check_id: str
    message: str
    hint: str | None = None

    def problems(self, key: str, value: Any, values: Mapping[str, Any]) -> list[Problem]:
        return [
            Problem(self.check_id, self.message.format(key=key, name=name, value=item), self.hint)
            for name, item in value.items()
            if not self.holds(name, item)
        ]


@dataclass(frozen=True, slots=True)
class Relation:
    """A condition between a key's value and another key's, when both are set and well typed.

    The message may name {key}, {value}, {other} and {other_value}.
    """

    other: str
    holds: Callable[[Any, Any], bool]
    check_id: str
    message: str
    hint: str | None = None

    def problems(self, key: str, value: Any, values: Mapping[str, Any]) -> list[Problem]:
        other_value = values.get(self.other)
        if value is None or other_value is None or self.holds(value, other_value):
            return []
        message = self.message.format(key=key, value=value, other=self.other, other_value=other_value)
        return [Problem(self.check_id, message, self.hint)]


def positive(check_id: str) -> Rule:
    """Require a number above zero."""
    # A bool passes a number's type check; this rule has always let it through.
    return Rule(lambda value: isinstance(value, bool) or value > 0, check_id, "DJTASKS[{key!r}] must be positive.")


def at_least(low: float, check_id: str, hint: str | None = None) -> Rule:
    """Require a number of at least `low`."""
    return Rule(
        lambda value: value >= low, check_id, f"DJTASKS[{{key!r}}] is {{value}}; it must be at least {low}.", hint
    )


def between(low: float, high: float, check_id: str, hint: str | None = None) -> Rule:
    """Require a number from `low` to `high`, both included."""
    return Rule(
        lambda value: low <= value <= high,
        check_id,
        f"DJTASKS[{{key!r}}] is {{value}}; it must be between {low} and {high}.",
        hint,
    )


@dataclass(frozen=True, slots=True)
class Key:
    """What the checks know of a key: the types its value may have and the rules it must meet."""

    types: tuple[type, ...]
    rules: tuple[Check, ...] = ()

    def accepts(self, value: Any) -> bool:
        # A bool is an int to isinstance: refused where only int is accepted, let through where a float is too.
        if isinstance(value, bool) and self.types == (int,):
            return False
        return isinstance(value, self.types)

    def type_names(self) -> str:
        return " or ".join(t.__name__ for t in self.types)


def setting(
    types: type | tuple[type, ...],
    *rules: Check,
    default: Any = None,
    factory: Callable[[], Any] | None = None,
    compare: bool = True,
) -> Any:
    """Declare a Settings field: the types a DJTASKS value may have, its rules, its default (or factory)."""
    metadata = {_KEY: Key(types if isinstance(types, tuple) else (types,), rules)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, compare=compare, metadata=metadata)
    return dataclasses.field(default=default, compare=compare, metadata=metadata)


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def problems(raw: object, schema: type) -> list[Problem]:
    """Check a DJTASKS value against a dataclass declared with setting(): unknown keys, types, then rules."""
    if not isinstance(raw, dict):
        return [Problem("djtasks.E001", "DJTASKS must be a dict.", "DJTASKS = {'REDIS_URL': ...}")]
    declared = {f.name: f for f in dataclasses.fields(schema)}
    found = [
        Problem("djtasks.E002", f"DJTASKS has an unknown key {name!r}.", f"Known keys: {', '.join(sorted(declared))}.")
        for name in sorted(set(raw) - set(declared))
    ]
    values = {name: _default(f) for name, f in declared.items()}
    for name, value in raw.items():
        if name not in declared:
            continue
        key: Key = declared[name].metadata[_KEY]
        if key.accepts(value):
            values[name] = value
            continue
        default = values.pop(name)  # its rules, and relations naming it, skip a value of the wrong type
        message = f"DJTASKS[{name!r}] must be of type {key.type_names()}, not {type(value).__name__}."
        found.append(Problem("djtasks.E003", message, f"Default: {default!r}."))
    for name, value in values.items():
        for rule in declared[name].metadata[_KEY].rules:
            found += rule.problems(name, value, values)
    return found
