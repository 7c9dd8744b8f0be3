"""Hide secret values in task data: any value under a key that contains a configured pattern.

Structured data (arguments, results, progress) is masked by key. Free text (exception messages,
tracebacks, dead-letter reasons) has no keys, so it is masked by value: every value found under a
secret key of the task's data is replaced wherever it occurs in the text, as written, JSON-escaped
or repr-escaped, in any letter case. A value too short to mask without masking half the text
(under MIN_TEXT_SECRET characters) withholds the whole text instead. Text that cannot be parsed
(a dead letter's raw message, cut at 64 KiB) is cut at the first secret-looking key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MASK = "********"
WITHHELD = "[withheld: it contains the value of a secret argument]"
MIN_TEXT_SECRET = 4


def redact(value: Any, patterns: Iterable[str]) -> Any:
    """Return a copy of JSON data with values under secret-looking keys masked, at any depth."""
    lowered = tuple(p.lower() for p in patterns)
    return _redact(value, lowered) if lowered else value


def is_secret(key: str, patterns: tuple[str, ...]) -> bool:
    name = key.lower()
    return any(p in name for p in patterns)


def _redact(value: Any, patterns: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: MASK if is_secret(str(k), patterns) else _redact(v, patterns) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, patterns) for v in value]
    return value


def secret_values(value: Any, patterns: Iterable[str]) -> set[str]:
    """Every scalar found under a secret-looking key of JSON data, at any depth, as text."""
    lowered = tuple(p.lower() for p in patterns)
    found: set[str] = set()
    if lowered:
        _collect(value, lowered, False, found)
    return found


def _collect(value: Any, patterns: tuple[str, ...], under_secret: bool, found: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _collect(v, patterns, under_secret or is_secret(str(k), patterns), found)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect(v, patterns, under_secret, found)
    elif under_secret and value is not None and not isinstance(value, bool) and str(value):
        found.add(str(value))


@dataclass(frozen=True)
class Redactor:
    """What a user without the right to see secrets may see of one task's data."""

    patterns: tuple[str, ...]
    secrets: frozenset[str]

    @classmethod
    def of(cls, patterns: Iterable[str], *data: Any) -> Redactor:
        """A redactor for the secrets found in these pieces of data (arguments, result, ...)."""
        lowered = tuple(p.lower() for p in patterns)
        found: set[str] = set()
        for piece in data:
            found |= secret_values(piece, lowered)
        return cls(lowered, frozenset(found))

    def data(self, value: Any) -> Any:
        """JSON data masked by key, and by value in its strings."""
        return self._strings(redact(value, self.patterns))

    def _strings(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._strings(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._strings(v) for v in value]
        return self.text(value) if isinstance(value, str) else value

    def text(self, text: str) -> str:
        """Free text with every secret value masked (or withheld whole, for a very short secret)."""
        if not text or not self.secrets:
            return text
        forms = {form for secret in self.secrets for form in _forms(secret) if form}
        if any(len(form) < MIN_TEXT_SECRET and form.lower() in text.lower() for form in forms):
            return WITHHELD
        pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
        return re.sub(pattern, MASK, text, flags=re.IGNORECASE)

    def raw(self, text: str) -> str:
        """A raw message: masked by key if it is JSON, else cut at its first secret-looking key."""
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return self.text(self.cut(text))
        extra = Redactor.of(self.patterns, parsed)
        both = Redactor(self.patterns, self.secrets | extra.secrets)
        return json.dumps(both._cut_strings(redact(parsed, self.patterns)), ensure_ascii=False)

    def _cut_strings(self, value: Any) -> Any:
        # A string inside a raw message may itself be encoded data: cut it like unparsed text.
        if isinstance(value, dict):
            return {k: self._cut_strings(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._cut_strings(v) for v in value]
        return self.text(self.cut(value)) if isinstance(value, str) else value

    def cut(self, text: str) -> str:
        """Text up to its first secret-looking key, then the mask."""
        lowered = text.lower()
        hits = [i for i in (lowered.find(p) for p in self.patterns) if i >= 0]
        return text[: min(hits)] + MASK if hits else text


def _forms(secret: str) -> tuple[str, ...]:
    """A value as it may appear in text: as is, JSON-escaped, repr-escaped."""
    return (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1])
