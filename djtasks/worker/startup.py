"""Before a worker takes work: what retrying cannot fix stops it at once, with the reason.

- The database: the worker connects and reads its task table. A wrong password, a server it
  cannot reach, a missing table (migrations not run) end the start with StartupFailure, so the
  command exits 1 with the reason and a supervisor (supervisord: FATAL) shows it.
- Redis: a refusal (a wrong password, NOAUTH, an ACL that denies it) is a StartupFailure too. A
  Redis that does not answer yet is waited for, logged every few seconds, since Redis and its
  workers are often started together; a stop signal ends the wait.
- The worker's name: claimed in Redis for as long as the worker lives. A live worker with the
  same name refuses this one (names key the control lists, heartbeats and the rows' worker
  field); a claim left by a process of this host that is gone (SIGKILL, a crash) is taken over.
After the start, outages are waited out as before: children reconnect with backoff.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from django.db import DatabaseError, connections

from djtasks.core.conf import Settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.record.models import TaskRecord
from djtasks.transport.broker import get_broker
from djtasks.worker.pools import SoloPool

logger = logging.getLogger("djtasks")
REDIS_WAIT_LOG_S = 5.0


class StartupFailure(Exception):
    """The worker cannot start; the message says why and what to change."""


class Starting(Protocol):
    @property
    def worker_id(self) -> str: ...

    @property
    def db(self) -> str: ...

    @property
    def stop_requested_at(self) -> float | None: ...

    @property
    def cold(self) -> bool: ...

    @property
    def config(self) -> Settings: ...


def owner_token() -> str:
    """Who holds a name claim: this host and process, and a nonce (a pid is reused in time)."""
    return f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex[:12]}"


_OWNER = owner_token()


def prepare(worker: Starting) -> None:
    """Check the database and Redis and claim the worker's name; raise StartupFailure saying why not."""
    check_database(worker.db)
    if not wait_for_redis(worker):
        return  # stopped while waiting: the worker exits without starting
    claim_name(worker)


def check_database(alias: str) -> None:
    try:
        TaskRecord.objects.using(alias).exists()
    except DatabaseError as exc:
        text = " ".join(str(exc).split()) or exc.__class__.__name__
        raise StartupFailure(
            f"The worker cannot use its database ({alias!r}): {exc.__class__.__name__}: {text}. "
            "Check DATABASES (host, port, user, password, name) and run `manage.py migrate`."
        ) from exc
    finally:
        connections[alias].close()


def wait_for_redis(worker: Starting) -> bool:
    """Return True once Redis answers (False if a stop came first); raise StartupFailure if it refuses us."""
    broker = get_broker()
    logged = float("-inf")
    while worker.stop_requested_at is None:
        try:
            reason = broker.refusal()
        except BrokerUnavailable as exc:
            if time.monotonic() - logged >= REDIS_WAIT_LOG_S:
                logged = time.monotonic()
                logger.warning("Worker %s: Redis does not answer yet (%s); waiting for it", worker.worker_id, exc)
            time.sleep(0.5)
            continue
        if reason:
            raise StartupFailure(f"{reason.rstrip('.')}. Check REDIS_URL (its password and user) and the server's ACL.")
        return True
    return False


def claim_name(worker: Starting) -> None:
    """Claim the worker's name in Redis, or raise StartupFailure naming the live worker that holds it."""
    broker, ttl = get_broker(), ttl_ms(worker)
    holder = broker.claim_name(worker.worker_id, _OWNER, ttl)
    if holder is None:
        return
    if _dead_here(holder) and broker.take_over_name(worker.worker_id, holder, _OWNER, ttl):
        logger.info("Worker %s: took over the name from a process that is gone (%s)", worker.worker_id, holder)
        return
    host, _, rest = holder.partition(" ")
    raise StartupFailure(
        f"A worker named {worker.worker_id!r} is already running (host {host}, pid {rest.partition(' ')[0]}). "
        "Names are unique: give this one another with -n, e.g. -n w2@%h."
    )


def renew_name(worker: Starting) -> None:
    """Keep the name claimed (from the heartbeat duty); log if another process holds it now."""
    holder = get_broker().claim_name(worker.worker_id, _OWNER, ttl_ms(worker))
    if holder is not None:
        logger.error("Worker %s: its name is claimed by another process (%s)", worker.worker_id, holder)


def release(worker: Starting) -> None:
    try:
        get_broker().release_name(worker.worker_id, _OWNER)
    except BrokerUnavailable:
        pass  # the claim expires


def ttl_ms(worker: Starting) -> int:
    return int(worker.config.LEASE_SECONDS * 1000)


def _dead_here(holder: str) -> bool:
    """Whether a claim's holder was a process of this host that no longer runs."""
    parts = holder.split(" ")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def run_solo(worker: Starting, pool: SoloPool, supervise: Callable[[], int]) -> int:
    """Run the supervisor in a helper thread while the main thread runs the solo child's tasks."""
    result: dict[str, int] = {}

    def supervisor() -> None:
        result["code"] = supervise()
        if worker.cold:  # the main thread may still be inside a task nothing can interrupt
            logger.warning("Cold shutdown of a solo worker: exiting now")
            os._exit(1)

    thread = threading.Thread(target=supervisor, name="djtasks-supervisor", daemon=True)
    thread.start()
    pool.serve(thread)
    thread.join()
    return result.get("code", 1)
