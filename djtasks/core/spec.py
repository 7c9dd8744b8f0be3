"""What the calling layer reads of a declared task, as protocols that calling.declaration.Task satisfies.

enqueue and retry take these instead of the Task class, so the facade built on them is not
also the type they import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class TaskDefaults(Protocol):
    """What a task's rows take from its declaration when the call does not say otherwise."""

    @property
    def registered_name(self) -> str: ...
    @property
    def queue_name(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def ignore_result(self) -> bool: ...
    @property
    def expires(self) -> float | None: ...
    @property
    def run_after(self) -> datetime | None: ...


class RetryPolicy(Protocol):
    """How a task declares its retries: the limit, the delay and which errors retry on their own."""

    @property
    def registered_name(self) -> str: ...
    @property
    def max_retries(self) -> int | None: ...
    @property
    def default_retry_delay(self) -> float: ...
    @property
    def autoretry_for(self) -> tuple[type[BaseException], ...]: ...
    @property
    def retry_kwargs(self) -> dict[str, Any] | None: ...
    @property
    def retry_backoff(self) -> bool | float: ...
    @property
    def retry_backoff_max(self) -> float: ...
    @property
    def retry_jitter(self) -> bool: ...
