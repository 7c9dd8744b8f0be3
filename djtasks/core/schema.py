"""How a DJTASKS key is declared (types, default, rules) and how a DJTASKS dict is checked against them.

conf.Settings declares every key once, with setting(): the settings object takes its defaults
from there, and problems() checks a DJTASKS dict against it (the system checks, and the worker
before it starts). Every problem carries a hint that says what a valid value is.
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

    def __str__(self) -> str:
        return f"({self.check_id}) {self.message}" + (f" HINT: {self.hint}" if self.hint else "")


def shown(value: Any) -> str:
    """Return a value's repr for a message, cut short when long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def label(name: str) -> str:
    """Name a key as messages do."""
    return f"DJTASKS[{name!r}]"


class Check(Protocol):
    @property
    def valid(self) -> str:
        """What the rule asks of a value, for hints ("from 1 to 1000"); empty if nothing."""
        ...

    def problems(self, key: str, value: Any, values: Mapping[str, Any], name: Callable[[str], str]) -> list[Problem]:
        """Report what is wrong with a key's value; values holds every key's well-typed value."""
        ...


@dataclass(frozen=True, slots=True)
class Rule:
    """A condition a key's value meets unless it is None; message may name {key} and {value}."""

    holds: Callable[[Any], bool]
    check_id: str
    message: str
    hint: str | None = None
    valid: str = ""

    def problems(self, key: str, value: Any, values: Mapping[str, Any], name: Callable[[str], str]) -> list[Problem]:
        if value is None or self.holds(value):
            return []
        return [Problem(self.check_id, self.message.format(key=name(key), value=shown(value)), self.hint)]


@dataclass(frozen=True, slots=True)
class Explained:
    """A condition whose failure says what broke it: error(value) returns None or the rest of the message.

    The message is "{key} " followed by that reason ("has an unknown key 'x'"), then a period.
    """

    error: Callable[[Any], str | None]
    check_id: str
    hint: str | None = None
    valid: str = ""

    def problems(self, key: str, value: Any, values: Mapping[str, Any], name: Callable[[str], str]) -> list[Problem]:
        reason = None if value is None else self.error(value)
        return [Problem(self.check_id, f"{name(key)} {reason}.", self.hint)] if reason else []


@dataclass(frozen=True, slots=True)
class EachItem:
    """A condition every item of a dict-valued key meets; message may name {key}, {name} and {value}."""

    holds: Callable[[Any, Any], bool]
    check_id: str
    message: str
    hint: str | None = None
    valid: str = ""

    def problems(self, key: str, value: Any, values: Mapping[str, Any], name: Callable[[str], str]) -> list[Problem]:
        return [
            Problem(self.check_id, self.message.format(key=name(key), name=shown(item), value=shown(target)), self.hint)
            for item, target in value.items()
            if not self.holds(item, target)
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
    valid: str = ""

    def problems(self, key: str, value: Any, values: Mapping[str, Any], name: Callable[[str], str]) -> list[Problem]:
        other_value = values.get(self.other)
        if value is None or other_value is None or self.holds(value, other_value):
            return []
        message = self.message.format(
            key=name(key), value=shown(value), other=name(self.other), other_value=shown(other_value)
        )
        return [Problem(self.check_id, message, self.hint)]


def between(low: float, high: float, check_id: str, *, above: bool = False, why: str = "") -> Rule:
    """Require a number from `low` (or above it) to `high`: NaN and infinities fail, as does a huge one."""
    valid = f"above {_number(low)} and at most {_number(high)}" if above else f"from {_number(low)} to {_number(high)}"
    return Rule(
        (lambda value: low < value <= high) if above else (lambda value: low <= value <= high),
        check_id,
        f"{{key}} is {{value}}; it must be {valid}.",
        why or None,
        valid,
    )


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:g}"


def positive(check_id: str, high: float, why: str = "") -> Rule:
    """Require a number above zero and at most `high`."""
    return between(0, high, check_id, above=True, why=why)


@dataclass(frozen=True, slots=True)
class Key:
    """What the checks know of a key: the types its value may have and the rules it must meet."""

    types: tuple[type, ...]
    rules: tuple[Check, ...] = ()

    def accepts(self, value: Any) -> bool:
        # A bool is an int to isinstance: refused wherever bool is not among the types.
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def type_names(self) -> str:
        return " or ".join(t.__name__ for t in self.types)

    def describe(self) -> str:
        """Say what a valid value is: "int from 1 to 1000", "int or float above 0 and at most 60, or None"."""
        kinds = " or ".join(t.__name__ for t in self.types if t is not NoneType)
        valid = ", ".join(rule.valid for rule in self.rules if rule.valid)
        return f"{kinds} {valid}".strip() + (", or None" if NoneType in self.types else "")


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


def problems(raw: object, schema: type, labels: Mapping[str, str] | None = None) -> list[Problem]:
    """Check a DJTASKS value against a dataclass declared with setting(): unknown keys, types, then rules.

    labels names some keys otherwise than DJTASKS['KEY'] (the worker's command-line options).
    """
    if not isinstance(raw, dict):
        return [Problem("djtasks.E001", "DJTASKS must be a dict.", "DJTASKS = {'REDIS_URL': ...}")]
    name: Callable[[str], str] = lambda key: (labels or {}).get(key) or label(key)  # noqa: E731
    declared = {f.name: f for f in dataclasses.fields(schema)}
    found = [
        Problem("djtasks.E002", f"DJTASKS has an unknown key {key!r}.", f"Known keys: {', '.join(sorted(declared))}.")
        for key in sorted(set(raw) - set(declared), key=repr)
    ]
    defaults = {key: _default(f) for key, f in declared.items()}
    values = dict(defaults)
    for key, value in raw.items():
        if key not in declared:
            continue
        spec: Key = declared[key].metadata[_KEY]
        if spec.accepts(value):
            values[key] = value
            continue
        values.pop(key)  # its rules, and relations naming it, skip a value of the wrong type
        message = f"{name(key)} must be of type {spec.type_names()}, not {type(value).__name__}."
        found.append(Problem("djtasks.E003", message, _hint(spec, defaults[key])))
    failed: set[str] = set()
    # Each value's own rules first; a relation is checked only between values that passed theirs.
    for relations in (False, True):
        for key, value in values.items():
            spec = declared[key].metadata[_KEY]
            for rule in spec.rules:
                if isinstance(rule, Relation) is not relations:
                    continue
                if isinstance(rule, Relation) and {key, rule.other} & failed:
                    continue
                for problem in rule.problems(key, value, values, name):
                    failed.add(key)
                    hint = " ".join(filter(None, [_hint(spec, defaults[key]), problem.hint]))
                    found.append(dataclasses.replace(problem, hint=hint))
    return found


def _hint(spec: Key, default: Any) -> str:
    return f"Valid: {spec.describe()}. Default: {shown(default)}."
