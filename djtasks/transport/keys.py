"""The names of every Redis key, and which hash slot (which Redis Cluster master) each one lives on.

Two kinds of keys, two kinds of hash tags:

- **Queue keys**, ``{PREFIX:<queue>}:<kind>``: everything one queue holds shares that queue's own
  hash tag, so a Redis Cluster spreads the queues over its masters and a script that works on one
  queue touches one slot. Kinds: ``ready`` (ZSET, scored by priority then arrival), ``scheduled``
  (ZSET, due time in ms), ``inflight`` (ZSET, lease deadline in ms), ``messages`` (HASH id ->
  envelope), ``owners`` (HASH id -> lease token), ``deliveries`` (HASH id -> count), ``seq``
  (STRING, arrival counter), ``epoch`` (STRING, written by the outbox sweep: missing means
  this queue's master lost its data) and ``paused`` (STRING, the admin's pause flag, which the
  claim script reads: transport/fleet.py).
- **Coordination keys**, ``{PREFIX}:<kind>[:<part>...]``: what is not one queue's (locks,
  heartbeats, control lists and replies, events, counters, rate limits and overrides, the set of
  queue names, the wake-up lists of every queue, the clock) shares the ``{PREFIX}`` tag, so
  commands and scripts over them (BLPOP on several queues' wake-up lists, the rate-limit script)
  stay in one slot.

Issue 21's keys follow it (transport/limits.py): a concurrency cap's slots, waiters and index
are queue keys (``cap:<task>:<digest>``, ``cap-wait:...``, ``cap-keys:<task>``), as its script
checks the queue's owners and parks in its scheduled set; keyed rate buckets (``rlk``, beside
the rate overrides ``rl-overrides``), their index and duplicate counts (``dups``) are
coordination keys.

The rule for a new key (a pause flag, a uniqueness lock, a concurrency cap, ...): name it with
``queue_key(queue, kind)`` when a queue's scripts read or write it, and with
``coordination_key(kind, ...)`` otherwise. A script takes keys of one queue only, or coordination
keys only, never both: then it runs on a single node and on a cluster alike. Plain commands of
several slots may share a pipeline (the cluster client splits it by node).

Releases before this layout kept every key under ``{PREFIX}:`` (see LEGACY_KINDS); transport.legacy
moves what they left into the queues' keys, and coordination kinds never reuse those names.
"""

from __future__ import annotations

QUEUE_KINDS = frozenset(
    {"ready", "scheduled", "inflight", "messages", "owners", "deliveries", "seq", "epoch", "paused"}
)
# Coordination kinds of the layout before per-queue keys: {PREFIX}:m, :o, :d, :seq, :q:<queue>,
# :s:<queue>, :i:<queue>. New coordination keys must not take these names.
LEGACY_KINDS = frozenset({"m", "o", "d", "seq", "q", "s", "i"})


class Keys:
    """Key names for one PREFIX."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.tag = "{" + prefix + "}"

    def queue_key(self, queue: str, kind: str) -> str:
        """Return a key of one queue, in that queue's hash slot (kind: see QUEUE_KINDS, or a new one)."""
        return "{" + self.prefix + ":" + queue + "}:" + kind

    def coordination_key(self, kind: str, *parts: str) -> str:
        """Return a key shared by every queue, in the coordination slot ({PREFIX})."""
        if kind in LEGACY_KINDS:
            raise ValueError(f"coordination key kind {kind!r} is a name of the previous layout; choose another")
        return ":".join((self.tag, kind, *parts))

    def wake_key(self, queue: str) -> str:
        """Return the list idle consumers of a queue block on: a coordination key, so one BLPOP covers many queues."""
        return self.coordination_key("w", queue)

    def done_channel(self, task_id: str) -> str:
        """Return the pub/sub channel a task's waiters listen on (channels are not keys: any node serves them)."""
        return self.coordination_key("done", task_id)

    def legacy_key(self, kind: str, *parts: str) -> str:
        """Return a key of the previous layout ({PREFIX}:m, {PREFIX}:q:<queue>, ...), for the migration."""
        if kind not in LEGACY_KINDS:
            raise ValueError(f"{kind!r} is not a key kind of the previous layout")
        return ":".join((self.tag, kind, *parts))
