"""What follows a task's final outcome: links, error links, the next chain step, chord counting.

Called by the worker (start.py, recording.py) inside the transaction that writes the outcome (fenced by the attempt's
lease token), so the follow-up rows commit together with the outcome or not at all: a worker
dying in between loses nothing, and a redelivered member cannot count twice (its row is already
final, so its redelivery never reaches here).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from djtasks.calling.canvas import Signature, chord, from_dict
from djtasks.core.states import SUCCESS
from djtasks.record import transitions
from djtasks.record.models import Chord, TaskRecord

logger = logging.getLogger("djtasks")
CHORD_ERROR = "djtasks.exceptions.ChordError"


def has_followers(record: TaskRecord) -> bool:
    """Tell whether the row's workflow (links, chain, chord) does anything after its outcome."""
    return bool(record.canvas)


def after_final(db: str, record: TaskRecord, state: str, result: Any, error: tuple[str, str, str]) -> None:
    """Start what the row's workflow says follows this outcome (error: type, message, traceback)."""
    canvas = record.canvas or {}
    if not canvas:
        return
    follow = {"parent_id": record.id, "root_id": record.root_id or record.id}
    if state == SUCCESS:
        for link in canvas.get("link", []):
            from_dict(link).apply_async((result,), **follow)
        rest = canvas.get("chain") or []
        if rest:
            from_dict(rest[0]).apply_async((result,), chain=rest[1:], **follow)
    else:
        for errback in canvas.get("link_error", []):
            from_dict(errback).apply_async((record.id,), **follow)
        fail_downstream(db, canvas.get("chain") or [], record, error)
    if canvas.get("chord"):
        count_chord(db, canvas["chord"], record, state, error)


def count_chord(db: str, chord_id: str, record: TaskRecord, state: str, error: tuple[str, str, str]) -> None:
    """Count a finished member under the chord's row lock; the member completing it fires the callback."""
    with transaction.atomic(using=db):
        Chord.objects.using(db).filter(pk=chord_id).update(done=F("done") + 1)
        counter = Chord.objects.using(db).select_for_update().filter(pk=chord_id).first()
        if counter is None or counter.fired_at is not None:
            return
        callback = from_dict(counter.callback)
        follow = {"parent_id": record.id, "root_id": record.root_id or record.id}
        if state != SUCCESS:
            exc_type, message, _ = error
            reason = f"Dependency {record.id} raised {exc_type.rpartition('.')[2]}: {message}"
            write_failed(db, callback, record, (CHORD_ERROR, reason, ""))
            fail_downstream(db, callback.options.get("chain") or [], record, (CHORD_ERROR, reason, ""))
        elif counter.done >= len(counter.member_ids):
            rows = dict(TaskRecord.objects.using(db).filter(pk__in=counter.member_ids).values_list("id", "result"))
            callback.apply_async(([rows.get(i) for i in counter.member_ids],), **follow)
        else:
            return
        counter.fired_at = timezone.now()
        counter.save(update_fields=["fired_at"], using=db)
        logger.info("Chord id=%s complete (%s); callback %s", chord_id, state, callback)


def fail_downstream(db: str, steps: list[dict[str, Any]], parent: TaskRecord, error: tuple[str, str, str]) -> None:
    """Record the chain steps that will never run as failed with their parent's error."""
    for data in steps:
        step = from_dict(data)
        if isinstance(step, chord):
            step = step.body
        if isinstance(step, Signature):
            write_failed(db, step, parent, error)


def write_failed(db: str, sig: Signature, parent: TaskRecord, error: tuple[str, str, str]) -> None:
    """Create the row of a frozen signature that cannot run, as FAILURE, so its waiters wake up."""
    task_id = sig.options.get("task_id")
    if not task_id:
        return
    transitions.create_failed(
        db,
        task_id,
        task_name=sig.task,
        queue=sig.options.get("queue") or parent.queue,
        args=list(sig.args),
        kwargs=sig.kwargs,
        error=error,
        parent=parent,
    )
