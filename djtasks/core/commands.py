"""The remote-control vocabulary that senders (djtasks.ops.control) and workers (djtasks.worker.remote) share."""

from __future__ import annotations

# What `inspect` can ask a worker about, in the order taskctl lists them.
INSPECTIONS = ("active", "scheduled", "reserved", "registered", "stats", "queues")
