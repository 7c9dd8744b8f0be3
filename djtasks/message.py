"""The wire format. Redis carries only a task's id, queue and priority; arguments stay in the row."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .exceptions import MessageRejected

VERSION = 1
MAX_ENVELOPE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    queue: str
    priority: int = 0

    def encode(self) -> str:
        return json.dumps(
            {"v": VERSION, "id": self.id, "q": self.queue, "p": self.priority},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, raw: bytes | str, *, expected_id: str | None = None) -> Message:
        """Parse an envelope; any defect raises MessageRejected and nothing else."""
        try:
            if len(raw) > MAX_ENVELOPE_BYTES:
                raise ValueError(f"envelope is {len(raw)} bytes, over {MAX_ENVELOPE_BYTES}")
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            data = json.loads(text, parse_constant=_reject_constant)
            if not isinstance(data, dict):
                raise ValueError("envelope is not a JSON object")
            if data.get("v") != VERSION:
                raise ValueError(f"unsupported envelope version {data.get('v')!r}")
            task_id, queue, priority = data.get("id"), data.get("q"), data.get("p", 0)
            if not isinstance(task_id, str) or not 0 < len(task_id) <= 255:
                raise ValueError("id must be a non-empty string")
            if not isinstance(queue, str) or not 0 < len(queue) <= 100:
                raise ValueError("q must be a non-empty string")
            if type(priority) is not int or not -100 <= priority <= 100:
                raise ValueError("p must be an integer between -100 and 100")
            if expected_id is not None and task_id != expected_id:
                raise ValueError(f"envelope id {task_id!r} does not match queued id {expected_id!r}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MessageRejected(f"malformed message: {exc}") from exc
        return cls(id=task_id, queue=queue, priority=priority)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
