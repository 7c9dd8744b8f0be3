"""What follows a task's final outcome: links, error links, the next chain step, chord counting.

Called by the worker (start.py, recording.py) inside the transaction that writes the outcome (fenced by the attempt's
lease token), so the follow-up rows commit together with the outcome or not at all: a worker
dying in between loses nothing, and a redelivered member cannot count twice (its row is already
final, so its redelivery never reaches here).

A chord counts the tasks marked with its id (canvas.py marks them when it starts the chord): its
header's own tasks, a nested chain's last step, a nested group's members, a nested chord's
callback. A task that can never run because what it waited for failed (the rest of a chain, a
failed chord's callback) gets a FAILURE row here, and its own marks count, so a failure climbs
out of nested chords; its error links run only when it is a failed chord's callback, as in Celery.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from djtasks.calling.canvas import Canvas, chain, from_dict
from djtasks.calling.signature import Layout, Signature
from djtasks.core.states import FAILURE, SUCCESS
from djtasks.record import transitions
from djtasks.record.models import Chord, TaskRecord

logger = logging.getLogger("djtasks")
CHORD_ERROR = "djtasks.exceptions.ChordError"
Error = tuple[str, str, str]  # exception class path, message, traceback


def has_followers(record: TaskRecord) -> bool:
    """Tell whether the row's workflow (links, chain, chord) does anything after its outcome."""
    return bool(record.canvas)


def after_final(db: str, record: TaskRecord, state: str, result: Any, error: Error) -> None:
    """Start what the row's workflow says follows this outcome (error: type, message, traceback)."""
    canvas = record.canvas or {}
    if not canvas:
        return
    follow = {"parent_id": record.id, "root_id": record.root_id or record.id}
    rest = canvas.get("chain") or []
    if state == SUCCESS:
        for link in canvas.get("link", []):
            from_dict(link).apply_async((result,), **follow)
        if rest:
            from_dict(rest[0]).run((result,), {}, {**follow, "chain": rest[1:]})
    else:
        for errback in canvas.get("link_error", []):
            from_dict(errback).apply_async((record.id,), **follow)
        if rest:
            fail(db, chain(*[from_dict(step) for step in rest]), record, error)
    if canvas.get("chord"):
        count_chord(db, canvas["chord"], record, state, error)


def count_chord(db: str, chord_id: str, record: TaskRecord, state: str, error: Error) -> None:
    """Count a finished member under the chord's row lock; the member completing it fires the callback."""
    with transaction.atomic(using=db):
        Chord.objects.using(db).filter(pk=chord_id).update(done=F("done") + 1)
        counter = Chord.objects.using(db).select_for_update().filter(pk=chord_id).first()
        if counter is None or counter.fired_at is not None:
            return
        callback = from_dict(counter.callback)
        if state != SUCCESS:
            exc_type, message, _ = error
            reason = f"Dependency {record.id} raised {exc_type.rpartition('.')[2]}({message!r})"  # Celery's words
            fail(db, callback, record, (CHORD_ERROR, reason, ""), errbacks=True)
        elif counter.done >= len(counter.member_ids):
            rows = dict(TaskRecord.objects.using(db).filter(pk__in=counter.member_ids).values_list("id", "result"))
            values = gather(counter.member_ids if counter.layout is None else counter.layout, rows)
            callback.run((values,), {}, {"parent_id": record.id, "root_id": record.root_id or record.id})
        else:
            return
        counter.fired_at = timezone.now()
        counter.save(update_fields=["fired_at"], using=db)
        logger.info("Chord id=%s complete (%s); callback %s", chord_id, state, callback)


def gather(layout: Layout, rows: dict[str, Any]) -> Any:
    """The callback's argument: each counted task's result where the layout puts it."""
    if isinstance(layout, str):
        return rows.get(layout)
    return [gather(node, rows) for node in layout]


def fail(db: str, node: Canvas, parent: TaskRecord, error: Error, *, errbacks: bool = False) -> None:
    """Record the tasks of a workflow that will never run as FAILURE with this error, and what follows from that."""
    entries = {id(sig) for sig in node.entries()} if errbacks else set()
    for sig in node.signatures():
        failed = write_failed(db, sig, parent, error)
        if failed is None:
            continue  # already final: what follows it has happened
        follow = {"parent_id": failed.id, "root_id": failed.root_id or failed.id}
        if id(sig) in entries:  # a failed chord's callback: its error links, as Celery calls them
            for errback in sig.options.get("link_error") or []:
                from_dict(errback).apply_async((failed.id,), **follow)
        if rest := sig.options.get("chain"):
            fail(db, chain(*[from_dict(step) for step in rest]), failed, error)
        if marker := sig.options.get("chord"):
            count_chord(db, marker, failed, FAILURE, error)


def write_failed(db: str, sig: Signature, parent: TaskRecord, error: Error) -> TaskRecord | None:
    """Create the row of a frozen signature that cannot run, as FAILURE, so its waiters wake; None if it exists."""
    task_id = sig.options.get("task_id")
    if not task_id:
        return None
    record, created = transitions.create_failed(
        db,
        task_id,
        task_name=sig.task,
        queue=sig.options.get("queue") or parent.queue,
        args=list(sig.args),
        kwargs=sig.kwargs,
        error=error,
        parent=parent,
    )
    return record if created else None
