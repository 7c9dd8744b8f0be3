"""Public import path ``djtasks.schedules``; the code lives in ``djtasks.periodic.schedules`` and ``.entries``."""

from djtasks.periodic.entries import ENTRY_KEYS, OPTION_KEYS, Entry, parse_entry, to_schedule
from djtasks.periodic.schedules import (
    CRONTAB_FIELDS,
    SOLAR_EVENTS,
    Schedule,
    ScheduleError,
    crontab,
    interval,
    once,
    solar,
)

__all__ = [
    "CRONTAB_FIELDS",
    "ENTRY_KEYS",
    "Entry",
    "OPTION_KEYS",
    "SOLAR_EVENTS",
    "Schedule",
    "ScheduleError",
    "crontab",
    "interval",
    "once",
    "parse_entry",
    "solar",
    "to_schedule",
]
