"""Periodic task rows (editable in the admin, synced from BEAT_SCHEDULE) and the runs they caused."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from djtasks.core import registry
from djtasks.periodic.schedules import SOLAR_EVENTS, Schedule, ScheduleError, crontab, interval, once, solar

SCHEDULE_FIELDS = ("interval", "crontab", "timezone", "one_off_at", "solar_event", "latitude", "longitude")


class Source(models.TextChoices):
    SETTINGS = "settings", _("BEAT_SCHEDULE setting")
    REMOVED = "removed", _("removed from BEAT_SCHEDULE")
    ADMIN = "admin", _("admin")


class PeriodicTask(models.Model):
    """A task enqueued on a schedule; every worker's beat duty fires each due run once cluster-wide."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    task = models.CharField(_("task name"), max_length=255, help_text=_("The registered name of a task."))
    args = models.JSONField(_("positional arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    queue = models.CharField(_("queue"), max_length=100, blank=True, help_text=_("Blank: the task's own queue."))
    priority = models.SmallIntegerField(_("priority"), null=True, blank=True)
    interval = models.FloatField(_("every N seconds"), null=True, blank=True)
    crontab = models.CharField(
        _("crontab"), max_length=255, blank=True, help_text=_("minute hour day-of-month month day-of-week")
    )
    timezone = models.CharField(
        _("time zone"), max_length=63, blank=True, help_text=_("Of the crontab; blank: the project's TIME_ZONE.")
    )
    one_off_at = models.DateTimeField(_("once at"), null=True, blank=True)
    solar_event = models.CharField(
        _("solar event"), max_length=20, blank=True, choices=[(e, e.replace("_", " ")) for e in SOLAR_EVENTS]
    )
    latitude = models.FloatField(_("latitude"), null=True, blank=True, help_text=_("Of the solar event, -90 to 90."))
    longitude = models.FloatField(
        _("longitude"), null=True, blank=True, help_text=_("Of the solar event, -180 (west) to 180 (east).")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    source = models.CharField(_("defined in"), max_length=10, choices=Source.choices, default=Source.ADMIN)
    description = models.TextField(_("description"), blank=True)
    # The scheduled time of the last run fired, and of the next one; the beat fences on next_run_at.
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)
    total_run_count = models.PositiveIntegerField(_("total runs"), default=0)
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        db_table = "djtasks_periodictask"
        verbose_name = _("periodic task")
        verbose_name_plural = _("periodic tasks")
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="djtasks_periodic_due_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def schedule(self) -> Schedule:
        """Return the schedule the row describes; raise ScheduleError if it describes none or several."""
        chosen = [bool(self.interval is not None), bool(self.crontab), bool(self.one_off_at), bool(self.solar_event)]
        if sum(chosen) != 1:
            raise ScheduleError(
                f"Periodic task {self.name!r} needs exactly one of: every N seconds, crontab, once at, solar event.",
                hint="Fill in one schedule field and leave the other two blank.",
                check_id="djtasks.E073",
            )
        if self.interval is not None:
            schedule: Schedule = interval(self.interval)
        elif self.crontab:
            schedule = crontab.parse(self.crontab, tz=self.timezone or None)
        elif self.solar_event:
            schedule = solar(self.solar_event, self.latitude, self.longitude)  # type: ignore[arg-type]
        else:
            assert self.one_off_at is not None
            schedule = once(self.one_off_at)
        schedule.validate()
        return schedule

    def set_schedule(self, schedule: Schedule) -> None:
        self.interval, self.crontab, self.timezone, self.one_off_at = None, "", "", None
        self.solar_event, self.latitude, self.longitude = "", None, None
        if isinstance(schedule, interval):
            self.interval = float(schedule.seconds)
        elif isinstance(schedule, crontab):
            self.crontab, self.timezone = schedule.expression, schedule.tz or ""
        elif isinstance(schedule, once):
            self.one_off_at = schedule.at
        elif isinstance(schedule, solar):
            self.solar_event, self.latitude, self.longitude = schedule.event, schedule.lat, schedule.lon

    def schedule_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in SCHEDULE_FIELDS)

    def plan_first_run(self, now: datetime | None = None) -> None:
        """Set next_run_at from the schedule as if the row were new (after a schedule change or enabling)."""
        now = now or timezone.now()
        schedule = self.schedule
        if isinstance(schedule, once) and self.last_run_at == schedule.at:
            self.next_run_at = None  # a one-off that already ran does not run again
        else:
            self.next_run_at = schedule.first_after(now)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.task and registry.get(self.task) is None:
            errors["task"] = f"No task named {self.task!r} is registered."
        if self.timezone:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                errors["timezone"] = f"{self.timezone!r} is not a known time zone (e.g. Europe/Paris)."
        if self.priority is not None and not TASK_MIN_PRIORITY <= self.priority <= TASK_MAX_PRIORITY:
            errors["priority"] = f"Between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}."
        if not isinstance(self.args, list):
            errors["args"] = "A JSON list, e.g. [1, 2]."
        if not isinstance(self.kwargs, dict):
            errors["kwargs"] = 'A JSON object, e.g. {"days": 30}.'
        if "timezone" not in errors:
            try:
                _ = self.schedule
            except ScheduleError as exc:
                alone = sum(
                    [self.interval is not None, bool(self.crontab), bool(self.one_off_at), bool(self.solar_event)]
                )
                field = (
                    ("crontab" if self.crontab else "solar_event" if self.solar_event else None) if alone == 1 else None
                )
                errors[field or "__all__"] = str(exc)
        if errors:
            raise ValidationError(errors)


class PeriodicRun(models.Model):
    """One run a periodic task caused; unique per (periodic task, scheduled time): the database's run key."""

    periodic_task = models.ForeignKey(
        PeriodicTask, on_delete=models.CASCADE, related_name="runs", verbose_name=_("periodic task")
    )
    scheduled_for = models.DateTimeField(_("scheduled for"))
    fired_at = models.DateTimeField(_("fired at"), default=timezone.now)
    # The id of the task row it enqueued (not a foreign key: expiring task rows keeps this history).
    task_id = models.CharField(_("task id"), max_length=255, db_index=True)
    worker = models.CharField(_("fired by"), max_length=255, blank=True)
    manual = models.BooleanField(_("run by hand"), default=False)

    class Meta:
        db_table = "djtasks_periodicrun"
        verbose_name = _("periodic run")
        verbose_name_plural = _("periodic runs")
        ordering = ["-scheduled_for"]
        constraints = [
            models.UniqueConstraint(fields=["periodic_task", "scheduled_for"], name="djtasks_periodicrun_once")
        ]

    def __str__(self) -> str:
        return f"{self.periodic_task_id}@{self.scheduled_for.isoformat()}"
