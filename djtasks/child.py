"""A worker child process: reserve a message, run it, repeat. It reports to its parent over a pipe."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from django.db import connections

from .broker import Claim, get_broker
from .conf import get_settings
from .exceptions import BrokerUnavailable
from .executor import Executor

logger = logging.getLogger("djtasks")
WAIT_SECONDS = 1.0


def encode_claim(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "envelope": claim.envelope.decode("utf-8", "backslashreplace"),
        "deliveries": claim.deliveries,
        "token": claim.token,
        "queue": claim.queue,
    }


def decode_claim(data: dict[str, Any]) -> Claim:
    return Claim(
        id=data["id"],
        envelope=data["envelope"].encode(),
        deliveries=data["deliveries"],
        token=data["token"],
        queue=data["queue"],
    )


class Backoff:
    """Capped exponential backoff with full jitter, for reconnecting to Redis."""

    def __init__(self, base: float = 0.1, cap: float = 5.0):
        self.base, self.cap, self.failures = base, cap, 0

    def sleep(self) -> None:
        self.failures += 1
        time.sleep(random.uniform(0, min(self.cap, self.base * 2**self.failures)))

    def reset(self) -> None:
        self.failures = 0


def child_main(
    index: int, worker_id: str, queues: list[str], pipe: Connection, max_tasks: int | None
) -> None:
    """Entry point of a forked child; returns (and the process exits) when asked to stop."""
    stopping = {"flag": False}

    def request_stop(signum: int, frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    config = get_settings()
    broker = get_broker()
    executor = Executor(broker, config, worker_id)
    lease_ms = int(config.LEASE_SECONDS * 1000)
    prefix = f"{worker_id}.{index}.{os.getpid()}"
    backoff = Backoff()
    done = 0
    while not stopping["flag"] and (max_tasks is None or done < max_tasks):
        try:
            claim = broker.claim(queues, f"{prefix}.{done}", lease_ms)
            if claim is None:
                broker.wait_for_work(queues, WAIT_SECONDS)
                continue
            backoff.reset()
        except BrokerUnavailable as exc:
            logger.warning("Worker %s child %d cannot reach Redis (%s); retrying", worker_id, index, exc)
            backoff.sleep()
            continue
        pipe.send_bytes(json.dumps({"event": "start", "claim": encode_claim(claim)}).encode())
        try:
            executor.run(claim)
        except Exception:
            # The database failed beyond its retry window (or a bug): the lease lapses and
            # the task runs again; this child carries on with a fresh connection.
            logger.exception("Task id=%s could not be settled; it will be redelivered", claim.id)
            for conn in connections.all(initialized_only=True):
                conn.close_if_unusable_or_obsolete()
        pipe.send_bytes(json.dumps({"event": "done", "id": claim.id}).encode())
        done += 1
        _close_broken_connections()
    pipe.close()


def _close_broken_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred and not conn.is_usable():
            conn.close()
        if conn.in_atomic_block:  # a task left a transaction open: never carry it over
            conn.rollback()
            conn.set_autocommit(True)
