"""Task rows (the record of every invocation) and dead letters; states as QuerySet methods."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from djtasks.core.states import FAILURE, PENDING, READY_STATES, RETRY, REVOKED, RUNNABLE_STATES, STARTED, SUCCESS, State


class TaskRecordQuerySet(models.QuerySet["TaskRecord"]):
    def pending(self) -> TaskRecordQuerySet:
        return self.filter(state=PENDING)

    def started(self) -> TaskRecordQuerySet:
        return self.filter(state=STARTED)

    def retrying(self) -> TaskRecordQuerySet:
        return self.filter(state=RETRY)

    def succeeded(self) -> TaskRecordQuerySet:
        return self.filter(state=SUCCESS)

    def failed(self) -> TaskRecordQuerySet:
        return self.filter(state=FAILURE)

    def revoked(self) -> TaskRecordQuerySet:
        return self.filter(state=REVOKED)

    def unready(self) -> TaskRecordQuerySet:
        return self.filter(state__in=RUNNABLE_STATES)

    def ready(self) -> TaskRecordQuerySet:
        return self.filter(state__in=READY_STATES)

    def unclaimed(self) -> TaskRecordQuerySet:
        """Rows that no live lease holds: waiting, or held by a lease that has expired."""
        return self.unready().filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now()))


class TaskRecord(models.Model):
    """One task invocation. The database is the record; Redis only carries its id."""

    id = models.CharField(_("task id"), max_length=255, primary_key=True)
    # No index of its own: djtasks_task_name_enq_idx (task_name, -enqueued_at) serves every lookup by name.
    task_name = models.CharField(_("task name"), max_length=255)
    queue = models.CharField(_("queue"), max_length=100, default="default")
    priority = models.SmallIntegerField(_("priority"), default=0)
    backend = models.CharField(_("backend alias"), max_length=100, default="default")
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    args = models.JSONField(_("positional arguments"), default=list)
    kwargs = models.JSONField(_("keyword arguments"), default=dict)
    result = models.JSONField(_("result"), null=True, blank=True)
    ignore_result = models.BooleanField(_("ignore result"), default=False)
    exception_type = models.CharField(_("exception type"), max_length=255, blank=True)
    exception_message = models.TextField(_("exception message"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    # One entry per failed attempt: {"attempt", "exception_type", "message", "traceback", "at"}.
    errors = models.JSONField(_("errors of every attempt"), default=list, blank=True)
    # What a running task last reported: {"current", "total", "percent", "message", "at"}.
    progress = models.JSONField(_("progress"), null=True, blank=True)
    enqueued_at = models.DateTimeField(_("enqueued at"), default=timezone.now)
    eta = models.DateTimeField(_("run after"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    worker_ids = models.JSONField(_("workers of every attempt"), default=list, blank=True)
    # The fence: every state write after the start is conditioned on the token of its attempt.
    lease_token = models.CharField(_("lease token"), max_length=255, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    parent_id = models.CharField(_("parent task id"), max_length=255, blank=True)
    root_id = models.CharField(_("root task id"), max_length=255, blank=True)
    group_id = models.CharField(_("group id"), max_length=255, blank=True)
    # Times the task asked to be retried (Celery's request.retries); attempts also counts redeliveries.
    retries = models.PositiveIntegerField(_("retries"), default=0)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    # What follows this task: {"link": [...], "link_error": [...], "chain": [...], "chord": id}.
    canvas = models.JSONField(_("workflow"), default=dict, blank=True)
    # This call's own options, which the worker applies to it: {"time_limit", "soft_time_limit", "shadow",
    # "add_to_parent": False, "replaced": [the calls replace() rewrote this row from]}.
    options = models.JSONField(_("call options"), default=dict, blank=True)
    # What the running attempt last said with update_state(): {"state", "meta", "attempt", "at"}.
    reported = models.JSONField(_("reported state"), null=True, blank=True)
    # Unique and debounced tasks (calling/unique.py): the key this row holds while it is active
    # (a digest of the task name and key; a partial unique index makes it the lock), and what its
    # options computed at enqueue: {"unique" or "debounce": {...}, "rate_limit": key, "concurrency": key,
    # "duplicates": calls that returned this row}. Both are NULL for tasks without those options.
    unique_lock = models.CharField(_("unique lock"), max_length=64, null=True, blank=True, editable=False)
    keys = models.JSONField(_("unique, rate-limit and concurrency keys"), null=True, blank=True)

    objects = TaskRecordQuerySet.as_manager()
    # Not a field: how the after-commit publish of a row being enqueued retries (apply_async's retry=);
    # None: one attempt, then the outbox sweep.
    publish_retry: Any = None

    class Meta:
        db_table = "djtasks_task"
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["-enqueued_at"]
        indexes = [
            models.Index(fields=["-enqueued_at"], name="djtasks_task_enqueued_idx"),
            models.Index(fields=["state", "enqueued_at"], name="djtasks_task_state_idx"),
            models.Index(fields=["queue", "state"], name="djtasks_task_queue_idx"),
            # Every index a new row enters costs each INSERT (bulk(): about 1 µs a row each on PostgreSQL),
            # so an index of what a new row lacks is partial: the sweep's and reaper's lapsed leases (a
            # lease is cleared when the task ends, so only running rows are in it) and the dashboard's
            # and results expiry's windows over finished_at (covering). Their queries compare the
            # column, which implies IS NOT NULL, so both databases use them. No index on root_id: no
            # query filters on it (a row's root is read by its primary key).
            models.Index(
                fields=["lease_expires_at"],
                name="djtasks_task_leased_idx",
                condition=Q(lease_expires_at__isnull=False),
            ),
            # The admin: newest first within a task name (and every lookup by name), or within a queue.
            models.Index(fields=["task_name", "-enqueued_at"], name="djtasks_task_name_enq_idx"),
            models.Index(fields=["queue", "-enqueued_at"], name="djtasks_task_queue_enq_idx"),
            models.Index(
                fields=["finished_at", "state", "task_name", "started_at"],
                name="djtasks_task_finished_at_idx",
                condition=Q(finished_at__isnull=False),
            ),
            # The admin's dead tasks (FAILURE, newest end first, as the admin orders them): PostgreSQL
            # reads them in order instead of sorting every failure (SQLite's planner still sorts).
            # Partial: a row enters it only when it fails.
            models.Index(fields=["-finished_at", "-id"], name="djtasks_task_failed_idx", condition=Q(state=FAILURE)),
            # The detail page's links to children and group members. Partial: most rows have neither,
            # and a full index of one repeated '' looks useless to the planner (queries repeat the condition).
            models.Index(fields=["parent_id"], name="djtasks_task_parent_idx", condition=~Q(parent_id="")),
            models.Index(fields=["group_id"], name="djtasks_task_group_idx", condition=~Q(group_id="")),
        ]
        constraints = [
            # Partial: only rows of unique or debounced tasks hold a key, and a finished one gives
            # it up lazily (the next enqueue of the key clears it), so the index stays small.
            models.UniqueConstraint(
                fields=["unique_lock"], condition=Q(unique_lock__isnull=False), name="djtasks_task_unique_lock"
            ),
        ]
        permissions = [
            ("view_task_arguments", _("Can see task arguments and results unredacted")),
            ("retry_task", _("Can retry tasks")),
            ("revoke_task", _("Can revoke tasks")),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.id}]"

    @property
    def runtime(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def shown_name(self) -> str:
        """The name logs, events and the admin show: the call's shadow=, else the task's name."""
        shadow = self.options.get("shadow") if isinstance(self.options, dict) else None
        return shadow if isinstance(shadow, str) and shadow else self.task_name

    @property
    def reported_state(self) -> tuple[str, Any] | None:
        """(state, meta) the running attempt reported with update_state(); None when nothing current was."""
        reported = self.reported
        if self.state not in (PENDING, STARTED) or not isinstance(reported, dict):
            return None
        state = reported.get("state")
        if not isinstance(state, str) or reported.get("attempt") != self.attempts:
            return None
        return state, reported.get("meta")

    @property
    def is_running(self) -> bool:
        return self.state in RUNNABLE_STATES and self.lease_expires_at is not None


class Dashboard(TaskRecord):
    """The task dashboard in the admin (a proxy, so the admin gives it a URL and an index entry)."""

    class Meta:
        proxy = True
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")
        default_permissions = ()


class DeadLetter(models.Model):
    """A message set aside because it cannot run: malformed, unknown, or poison."""

    task_id = models.CharField(_("task id"), max_length=255, blank=True, db_index=True)
    task_name = models.CharField(_("task name"), max_length=255, blank=True)
    queue = models.CharField(_("queue"), max_length=100, blank=True)
    reason = models.TextField(_("reason"))
    raw = models.TextField(_("raw message"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        db_table = "djtasks_deadletter"
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        # The title of its admin page: the reason, however long, is a field of its own there.
        return f"{self.task_name or '?'}[{self.task_id or '-'}]"


class Chord(models.Model):
    """A chord's counter: the callback is enqueued by the member whose outcome completes it."""

    id = models.CharField(_("group id"), max_length=255, primary_key=True)
    # The tasks whose outcomes are counted: the header's own, a nested chain's last step, a nested
    # group's members, a nested chord's callback. layout nests them as the callback's argument is
    # nested (None: the list of member_ids, in order).
    member_ids = models.JSONField(_("member task ids"), default=list)
    layout = models.JSONField(_("result layout"), null=True, blank=True)
    done = models.PositiveIntegerField(_("members finished"), default=0)
    callback = models.JSONField(_("callback signature"))
    fired_at = models.DateTimeField(_("callback enqueued at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        db_table = "djtasks_chord"
        verbose_name = _("chord")
        verbose_name_plural = _("chords")

    def __str__(self) -> str:
        return f"chord[{self.id}] {self.done}/{len(self.member_ids)}"


class GroupRecord(models.Model):
    """A saved GroupResult (GroupResult.save()): the results that make up a group, for GroupResult.restore()."""

    id = models.CharField(_("group id"), max_length=255, primary_key=True)
    # Celery's as_tuple() form of each member: [[id, parent], null] for a task, [[id, parent], [...]] for a group.
    results = models.JSONField(_("member results"), default=list)
    created_at = models.DateTimeField(_("saved at"), default=timezone.now, db_index=True)

    class Meta:
        db_table = "djtasks_group"
        verbose_name = _("saved group")
        verbose_name_plural = _("saved groups")

    def __str__(self) -> str:
        return f"group[{self.id}] {len(self.results)} member(s)"
