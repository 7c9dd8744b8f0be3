"""An idle worker's start as a compare-and-set: one UPDATE in autocommit, fenced by what the unlocked read saw."""

from __future__ import annotations

from datetime import datetime

from djtasks.record import sql
from djtasks.record.models import TaskRecord
from djtasks.record.transitions import CLAIMED


def write_claimed_if_unchanged(db: str, record: TaskRecord, seen: tuple[str, int, str, datetime | None]) -> bool:
    """Write what claim_attempt() took, in one UPDATE, only if the row is still as read (unlocked): seen is
    its (state, attempts, lease_token, lease_expires_at) then. False: it changed, nothing was written.

    The compare-and-set a lock would give: any write that could change what the start decided (a
    revoke, another attempt's start, a lease extended or dropped) changes one of them. A debounced
    call's rewrite of a waiting row (locks.replace_waiting) changes none: rows that hold a unique
    key (unique_lock) never come here (worker/start.py).
    """
    state, attempts, token, lease = seen
    claimed = {name: getattr(record, name) for name in CLAIMED}
    matched = sql.update(
        db, claimed, id=record.pk, state=state, attempts=attempts, lease_token=token, lease_expires_at=lease
    )
    return matched == 1
