"""Public import path ``djtasks.schedules``; the code lives in ``djtasks.periodic.schedules``."""

from djtasks.periodic.schedules import (
    CRONTAB_FIELDS,
    ENTRY_KEYS,
    OPTION_KEYS,
    Entry,
    Schedule,
    ScheduleError,
    crontab,
    interval,
    once,
    parse_entry,
    to_schedule,
)

__all__ = [
    "CRONTAB_FIELDS",
    "ENTRY_KEYS",
    "Entry",
    "OPTION_KEYS",
    "Schedule",
    "ScheduleError",
    "crontab",
    "interval",
    "once",
    "parse_entry",
    "to_schedule",
]
