"""The events and counters of a worker's tasks: received, started and finished, written with the acks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from djtasks.core.states import SUCCESS
from djtasks.transport.telemetry import OUTCOME_EVENTS, Recorder

if TYPE_CHECKING:
    from djtasks.worker.outcome import Outcome, Started


class TaskRecorder(Recorder):
    """A worker child's recorder: the events of the tasks it runs, and their run and wait times."""

    def received(self, items: Iterable[Started]) -> None:
        for item in items:
            self.event(
                "task-received",
                id=item.claim.id,
                name=item.record.shown_name,  # apply_async(shadow=...) names the call in events
                queue=item.claim.queue,
                attempt=item.record.attempts,
            )

    def started(self, item: Started) -> None:
        record = item.record
        self.event(
            "task-started", id=item.claim.id, name=record.shown_name, queue=item.claim.queue, attempt=record.attempts
        )
        ready_at = max(filter(None, (record.enqueued_at, record.eta)))
        self.wait.observe(item.task.registered_name, (item.started_at - ready_at).total_seconds())

    def finished(self, item: Started, outcome: Outcome) -> None:
        name, queue = item.task.registered_name, item.claim.queue
        self.done[(name, queue, outcome.state)] += 1
        runtime = (outcome.finished_at - item.started_at).total_seconds() if outcome.finished_at else 0.0
        self.runtime.observe(name, runtime)
        fields: dict[str, Any] = {
            "id": item.claim.id,
            "name": item.record.shown_name,
            "queue": queue,
            "runtime": round(runtime, 6),
            "attempt": item.record.attempts,
        }
        if outcome.state != SUCCESS:
            # The class only: the message may quote the task's arguments, and events leave the record
            # for anyone who can read Redis. The row keeps the message, behind the admin's permission.
            fields["exception"] = outcome.exception_type[:255]
        self.event(OUTCOME_EVENTS.get(outcome.state, "task-" + outcome.state.lower()), **fields)
