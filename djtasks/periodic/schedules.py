"""When periodic tasks are due: interval, crontab (with time zones and DST), solar and one-off schedules.

Pure logic, no database and no Redis. Every schedule answers two questions about absolute time:
the first slot strictly after a moment (`next_after`), and the latest slot in a window
(`latest_between`, used by the catch-up policy). Slots are aware datetimes; crontab slots are
given in UTC (Python compares datetimes that share a tzinfo by wall time, blind to the DST fold).

Daylight saving, for crontab schedules in a zone that has it:
- a wall-clock time skipped by the spring-forward gap runs once, at the first valid time after
  the gap (02:30 on the day Paris jumps from 02:00 to 03:00 runs at 03:00);
- a wall-clock time that happens twice in the fall-back hour runs once, in its first occurrence,
  when the crontab names its hours (``hour=2``); a crontab whose hour field is ``*`` runs by
  elapsed time and so fires in both passes (``*/30 * * * *`` stays every 30 minutes).
Interval schedules count elapsed seconds and never see DST. Solar schedules (Celery's solar) are
computed in UTC by astral; a day on which the event does not happen (no astronomical dusk in a
northern summer, polar day or night) has no slot.
"""

from __future__ import annotations

import difflib
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings

from djtasks.core.exceptions import ImproperlyDeclared


def _astral() -> Any:
    """Import astral's sun module when a solar schedule is used (as croniter, only then)."""
    from astral import sun

    return sun


def _croniter() -> Any:
    """Import croniter when a crontab is used: it and dateutil cost a worker several MiB per process."""
    from croniter import croniter

    return croniter


CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# Where each field sits in a five-field cron line, to test a field on its own.
_FIELD_PROBES = {
    "minute": "{} * * * *",
    "hour": "* {} * * *",
    "day_of_month": "* * {} * *",
    "month_of_year": "* * * {} *",
    "day_of_week": "* * * * {}",
}
# Search for the latest missed slot from this far back first; further only for sparse schedules.
_LOOKBACK = timedelta(days=1)
_DST_MARGIN = timedelta(hours=3)


class ScheduleError(ImproperlyDeclared):
    """A schedule or BEAT_SCHEDULE entry is invalid; carries a hint and a system check id."""

    def __init__(self, message: str, *, hint: str = "", check_id: str = "djtasks.E071"):
        super().__init__(message)
        self.hint = hint
        self.check_id = check_id


class Schedule:
    """A rule that yields absolute slots."""

    def first_after(self, moment: datetime) -> datetime | None:
        """Return the first slot of a newly created schedule."""
        return self.next_after(moment)

    def next_after(self, moment: datetime) -> datetime | None:
        raise NotImplementedError

    def latest_between(self, first: datetime, moment: datetime) -> datetime:
        """Return the latest slot s with first <= s <= moment, given that ``first`` is a slot."""
        # Walk the last day only; a schedule with no slot in it is sparse, so walking it all is short.
        latest = self._walk(max(first, moment - _LOOKBACK), moment)
        if latest is None:
            latest = self._walk(first, moment)
        return latest or first

    def _walk(self, start: datetime, end: datetime) -> datetime | None:
        latest: datetime | None = None
        cursor: datetime | None = start - timedelta(microseconds=1)
        while cursor is not None and (cursor := self.next_after(cursor)) is not None and cursor <= end:
            latest = cursor
        return latest

    def validate(self) -> None:
        """Raise ScheduleError when the schedule cannot work."""

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class interval(Schedule):  # noqa: N801 - lower case like crontab, as users write it in settings
    """Every N seconds of elapsed time, anchored on the first slot (no drift)."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        return moment + timedelta(seconds=self.seconds)

    def latest_between(self, first: datetime, moment: datetime) -> datetime:
        step = timedelta(seconds=self.seconds)
        return first + step * ((moment - first) // step)

    def validate(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float) or not self.seconds > 0:
            raise ScheduleError(
                f"An interval schedule must be a positive number of seconds, not {self.seconds!r}.",
                hint="e.g. 30.0, timedelta(minutes=5) or interval(seconds=30).",
                check_id="djtasks.E073",
            )

    def describe(self) -> str:
        return f"every {self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class crontab(Schedule):  # noqa: N801 - Celery's name
    """A cron rule read in a time zone (the project's TIME_ZONE unless ``tz`` names one)."""

    minute: str | int = "*"
    hour: str | int = "*"
    day_of_week: str | int = "*"
    day_of_month: str | int = "*"
    month_of_year: str | int = "*"
    tz: str | None = None

    @classmethod
    def parse(cls, expression: str, tz: str | None = None) -> crontab:
        """Build from a five-field line: minute hour day-of-month month day-of-week."""
        parts = expression.split()
        if len(parts) != 5:
            raise ScheduleError(
                f"Crontab {expression!r} must have five fields, not {len(parts)}.",
                hint="minute hour day-of-month month day-of-week, e.g. '0 3 * * *'.",
                check_id="djtasks.E074",
            )
        minute, hour, dom, month, dow = parts
        return cls(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow, tz=tz)

    @property
    def expression(self) -> str:
        return " ".join(str(getattr(self, name)) for name in CRONTAB_FIELDS)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz or settings.TIME_ZONE or "UTC")

    def validate(self) -> None:
        for name in CRONTAB_FIELDS:
            value = str(getattr(self, name)).strip()
            if not value or " " in value or not _croniter().is_valid(_FIELD_PROBES[name].format(value)):
                raise ScheduleError(
                    f"crontab {name}={getattr(self, name)!r} is not a valid cron field.",
                    hint=_FIELD_HINTS[name],
                    check_id="djtasks.E074",
                )
        try:
            _ = self.zone
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(str(self.tz), zoneinfo.available_timezones(), n=1)
            raise ScheduleError(
                f"crontab tz={self.tz!r} is not a known time zone.",
                hint=f"Did you mean {close[0]!r}?" if close else "Use an IANA name such as 'Europe/Paris'.",
                check_id="djtasks.E075",
            ) from None

    def next_after(self, moment: datetime) -> datetime:
        zone = self.zone
        once_per_day = str(self.hour).strip() != "*"
        # croniter iterates a repeated hour correctly only when it walks into it: near a transition,
        # start a few hours back and walk forward past the moment.
        start = moment - _DST_MARGIN if _near_transition(moment, zone) else moment
        iterator = _croniter()(self.expression, start.astimezone(zone))
        while True:
            instant = iterator.get_next(datetime).astimezone(UTC)
            if instant <= moment:
                continue
            # The second pass of a repeated (fall-back) hour: a crontab that names hours ran in the first.
            if once_per_day and instant.astimezone(zone).fold == 1:
                continue
            # In UTC: Python compares datetimes sharing one tzinfo by wall time, blind to the fold.
            return instant

    def describe(self) -> str:
        return f"{self.expression} ({self.zone.key})"


@dataclass(frozen=True, slots=True)
class once(Schedule):  # noqa: N801
    """A single run at an aware datetime; a one-off whose time has passed runs as soon as it is seen."""

    at: datetime

    def first_after(self, moment: datetime) -> datetime:
        return self.at

    def next_after(self, moment: datetime) -> None:
        return None

    def latest_between(self, first: datetime, moment: datetime) -> datetime:
        return first

    def validate(self) -> None:
        if not isinstance(self.at, datetime) or self.at.tzinfo is None:
            raise ScheduleError(
                f"A one-off schedule needs an aware datetime, not {self.at!r}.",
                hint="e.g. datetime(2030, 1, 1, 9, 0, tzinfo=ZoneInfo('Europe/Paris')).",
                check_id="djtasks.E073",
            )

    def describe(self) -> str:
        return f"once at {self.at.isoformat()}"


# Celery's solar events: (astral function, depression below the horizon in degrees or None).
SOLAR_EVENTS = {
    "dawn_astronomical": ("dawn", 18.0),
    "dawn_nautical": ("dawn", 12.0),
    "dawn_civil": ("dawn", 6.0),
    "sunrise": ("sunrise", None),
    "solar_noon": ("noon", None),
    "sunset": ("sunset", None),
    "dusk_civil": ("dusk", 6.0),
    "dusk_nautical": ("dusk", 12.0),
    "dusk_astronomical": ("dusk", 18.0),
}
_SOLAR_DAYS = 370  # a year without the event (a pole's long night): there is none


@dataclass(frozen=True, slots=True)
class solar(Schedule):  # noqa: N801 - Celery's name
    """Every day at a solar event seen from a place: solar("sunset", 48.85, 2.35)."""

    event: str
    lat: float
    lon: float

    def validate(self) -> None:
        if self.event not in SOLAR_EVENTS:
            close = difflib.get_close_matches(str(self.event), SOLAR_EVENTS, n=1)
            raise ScheduleError(
                f"{self.event!r} is not a solar event.",
                hint=f"Did you mean {close[0]!r}?" if close else f"One of {', '.join(SOLAR_EVENTS)}.",
                check_id="djtasks.E076",
            )
        for name, bound in (("lat", 90), ("lon", 180)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
                raise ScheduleError(
                    f"solar {name}={value!r} must be a number from {-bound} to {bound} (degrees).",
                    hint="e.g. solar('sunset', 48.85, 2.35) for Paris.",
                    check_id="djtasks.E076",
                )

    def at(self, day: date) -> datetime | None:
        """The event's moment on a UTC day, or None when it does not happen that day."""
        sun = _astral()
        function, depression = SOLAR_EVENTS[self.event]
        extra = {} if depression is None else {"depression": depression}
        try:
            moment: datetime = getattr(sun, function)(sun.Observer(self.lat, self.lon), day, tzinfo=UTC, **extra)
        except ValueError:  # the sun never gets there that day
            return None
        return moment.replace(microsecond=0)

    def next_after(self, moment: datetime) -> datetime | None:
        day = moment.astimezone(UTC).date() - timedelta(days=1)
        for offset in range(_SOLAR_DAYS):
            found = self.at(day + timedelta(days=offset))
            if found is not None and found > moment:
                return found
        return None

    def describe(self) -> str:
        return f"{self.event} at {self.lat:g}, {self.lon:g}"


_FIELD_HINTS = {
    "minute": "0-59, lists (0,30), ranges (0-15) and steps (*/5).",
    "hour": "0-23, lists (3,15), ranges (9-17) and steps (*/2).",
    "day_of_month": "1-31, lists, ranges and steps.",
    "month_of_year": "1-12 or jan-dec, lists, ranges and steps.",
    "day_of_week": "0-6 (0 is Sunday) or sun-sat, lists, ranges and steps.",
}


def _near_transition(moment: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    before, after = (moment - _DST_MARGIN).astimezone(zone), (moment + _DST_MARGIN).astimezone(zone)
    return before.utcoffset() != after.utcoffset()
