"""Keyed rate limits and concurrency caps at a task's start, and the cap's slot given back at its end.

A capped task whose cap is full does not wait in a child: the cap script hands its claim back to
the scheduled set (uncounted) and notes it as a waiter; the attempt that gives a slot back wakes
the first waiter at once. A waiter no release wakes (the holder's worker died, Redis lost the
note) asks again after LEASE_SECONDS + REAP_INTERVAL, by which time a dead holder's lease has
been reaped. Without Redis a cap cannot be known, so a capped task waits; a rate limit does not.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from django.utils import timezone

from djtasks.calling.declaration import Task
from djtasks.calling.gates import START, Gate, KeyFunction, described
from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import Broker, Claim
from djtasks.worker.outcome import Outcome, Started
from djtasks.worker.ratelimit import Limiter
from djtasks.worker.verdicts import Parked, Run, SetAside, Verdict, Wait

logger = logging.getLogger("djtasks")
KEY_FAILED = "djtasks.exceptions.InvalidCall"
# Without Redis the cap is unknown: the claim cannot be handed back either, so its lease lapses
# and the reaper returns it; this is how long the child waits before asking.
UNKNOWN_CAP_WAIT_MS = 1000


class KeyUnavailable(Exception):
    """A row without a stored key whose key function fails on its arguments."""


def key_of(record: TaskRecord, option: str, function: KeyFunction | None) -> str | None:
    """The row's key for option ("rate_limit", "concurrency"), as computed at enqueue, or now for rows without it."""
    if function is None:
        return None
    stored = record.keys.get(option) if isinstance(record.keys, dict) else None
    if isinstance(stored, str) and stored:
        return stored
    try:  # enqueued by name (send_task) where the task is not declared, or before the option existed
        return function(list(record.args), dict(record.kwargs))
    except BaseException as exc:  # noqa: BLE001 - the task's own key function may raise anything
        reason = f"its {function.option} cannot be computed: {type(exc).__qualname__}: {described(exc)}"
        raise KeyUnavailable(reason) from None


class Caps:
    """A child's side of keyed rate limits and concurrency caps."""

    def __init__(self, broker: Broker, config: Settings, limiter: Limiter):
        self.broker = broker
        self.limiter = limiter
        self.park_ms = int((config.LEASE_SECONDS + config.REAP_INTERVAL) * 1000)

    def decide(self, task: Task, gate: Gate, claim: Claim, record: TaskRecord) -> Verdict:
        """Take the call's rate-limit start and its cap's slot, or say how it waits."""
        try:
            rate_key = key_of(record, "rate_limit", gate.rate_key)
            cap_key = key_of(record, "concurrency", gate.concurrency_key)
        except KeyUnavailable as exc:
            return SetAside(str(exc), KEY_FAILED)
        if rate_key is not None:
            if wait_ms := self.limiter.keyed_delay_ms(task.registered_name, rate_key, task.rate_limit):
                return Wait(wait_ms)
        elif wait_ms := self.limiter.delay_ms(task.registered_name, task.rate_limit):
            return Wait(wait_ms)
        if gate.concurrency is None:
            return Run(task, at=timezone.now())
        # Jitter, so that waiters parked together do not all ask again at once.
        park_ms = int(self.park_ms * random.uniform(1.0, 1.1))
        try:
            taken = self.broker.acquire_slot(task.registered_name, cap_key, gate.concurrency, claim, park_ms)
        except BrokerUnavailable as exc:
            return Wait(UNKNOWN_CAP_WAIT_MS, f"cannot reach Redis to take a concurrency slot ({exc}); waiting")
        if taken == 1:
            return Run(task, at=timezone.now())
        if taken == 0:
            return Parked(f"waits for a concurrency slot ({gate.concurrency} running{_for(cap_key)})")
        return Parked("is no longer held by this worker (its lease was lost); left to its new owner")

    def release(self, done: list[tuple[Started, Outcome]]) -> None:
        """Give back the slots of attempts whose outcome is settled; wake a waiter for each."""
        for started, _ in done:
            gate = START.get(started.task.registered_name)
            if gate is None or gate.concurrency is None:
                continue
            claim = started.claim
            try:
                key = key_of(started.record, "concurrency", gate.concurrency_key)
                woken = self.broker.release_slot(started.task.registered_name, key, claim)
            except (KeyUnavailable, BrokerUnavailable) as exc:
                # The slot ends with the attempt's lease all the same; waiters ask again later.
                logger.warning("Task id=%s: its concurrency slot was not given back (%s)", claim.id, exc)
                continue
            if woken:
                logger.debug("Task id=%s gave back its concurrency slot and woke task id=%s", claim.id, woken)


def _for(key: Any) -> str:
    return "" if key is None else " for its key"
