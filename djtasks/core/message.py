"""The wire format. Redis carries only a task's id, queue and priority; arguments stay in the row.

An envelope is the value Redis keeps for a queued id: "2:<priority>" (the id is the key it is
stored under and the queue is the set it waits in, so neither is repeated: 27 bytes less per
queued task). Envelopes of version 1, JSON {"v": 1, "id", "q", "p"} written by earlier
releases, are still read, so messages queued before an upgrade run after it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from djtasks.core.exceptions import MessageRejected

VERSION = 1  # the JSON envelope of earlier releases, still read
COMPACT = "2"
MAX_ENVELOPE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    queue: str
    priority: int = 0

    def encode(self) -> str:
        return f"{COMPACT}:{self.priority}"

    @classmethod
    def decode(cls, raw: bytes | str, *, expected_id: str | None = None, queue: str | None = None) -> Message:
        """Parse an envelope; any defect raises MessageRejected and nothing else.

        A compact envelope needs the id it was stored under and the queue it was found in.
        """
        try:
            if len(raw) > MAX_ENVELOPE_BYTES:
                raise ValueError(f"envelope is {len(raw)} bytes, over {MAX_ENVELOPE_BYTES}")
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            task_id: object
            priority: object
            place: object = queue
            if text.startswith(COMPACT + ":"):
                task_id, priority = expected_id, _compact_priority(text)
            else:
                task_id, place, priority = _json_fields(text)
            if not isinstance(task_id, str) or not 0 < len(task_id) <= 255:
                raise ValueError("id must be a non-empty string")
            if not isinstance(place, str) or not 0 < len(place) <= 100:
                raise ValueError("q must be a non-empty string")
            if type(priority) is not int or not -100 <= priority <= 100:
                raise ValueError("p must be an integer between -100 and 100")
            if expected_id is not None and task_id != expected_id:
                raise ValueError(f"envelope id {task_id!r} does not match queued id {expected_id!r}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MessageRejected(f"malformed message: {exc}") from exc
        return cls(id=task_id, queue=place, priority=priority)


def _compact_priority(text: str) -> int:
    digits = text[len(COMPACT) + 1 :]
    if not digits.lstrip("-").isascii() or not digits.lstrip("-").isdigit() or len(digits) > 4:
        raise ValueError(f"envelope {text[:40]!r} does not end in an integer priority")
    return int(digits)


def _json_fields(text: str) -> tuple[object, object, object]:
    data = json.loads(text, parse_constant=_reject_constant)
    if not isinstance(data, dict):
        raise ValueError("envelope is not a JSON object")
    if data.get("v") != VERSION:
        raise ValueError(f"unsupported envelope version {data.get('v')!r}")
    return data.get("id"), data.get("q"), data.get("p", 0)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
