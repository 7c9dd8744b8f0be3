"""Schedules as pure logic: crontab in a zone with daylight saving, intervals, one-offs, catch-up."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from djtasks.periodic.beat import plan, run_task_id
from djtasks.schedules import ScheduleError, crontab, interval, once, parse_entry, to_schedule

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
GRACE = timedelta(seconds=5)


def slots(schedule, start, count, zone=PARIS):
    """Return the next `count` slots after `start`, read on the wall clock of `zone`."""
    found, cursor = [], start
    for _ in range(count):
        cursor = schedule.next_after(cursor)
        found.append(cursor.astimezone(zone))
    return found


def test_a_daily_crontab_runs_at_its_local_time_in_its_zone():
    nightly = crontab(hour=3, minute=0, tz="Europe/Paris")
    [first, second] = slots(nightly, datetime(2026, 7, 1, 12, tzinfo=UTC), 2)
    assert first == datetime(2026, 7, 2, 3, 0, tzinfo=PARIS) and first.utcoffset() == timedelta(hours=2)
    assert second - first == timedelta(days=1)


def test_a_time_skipped_by_spring_forward_runs_once_at_the_end_of_the_gap():
    # Paris, 29 March 2026: 02:00 jumps to 03:00, so 02:30 does not exist that day.
    runs = slots(crontab(hour=2, minute=30, tz="Europe/Paris"), datetime(2026, 3, 28, 12, tzinfo=UTC), 3)
    assert [r.isoformat() for r in runs] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_two_times_in_the_gap_still_run_once():
    runs = slots(crontab(hour=2, minute="0,30", tz="Europe/Paris"), datetime(2026, 3, 29, 0, tzinfo=UTC), 2)
    assert [r.isoformat() for r in runs] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]


def test_a_time_repeated_by_fall_back_runs_once_in_its_first_occurrence():
    # Paris, 25 October 2026: 03:00 goes back to 02:00, so 02:30 happens at +02:00 and again at +01:00.
    runs = slots(crontab(hour=2, minute=30, tz="Europe/Paris"), datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [r.isoformat() for r in runs] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_the_repeated_hour_rule_holds_in_new_york_too():
    # New York, 1 November 2026: 01:30 EDT then 01:30 EST.
    runs = slots(crontab(hour=1, minute=30, tz="America/New_York"), datetime(2026, 10, 31, 12, tzinfo=UTC), 2, NEW_YORK)
    assert runs[0] == datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK) and runs[0].utcoffset() == timedelta(hours=-4)
    assert runs[1].isoformat() == "2026-11-02T01:30:00-05:00"
    # Spring forward, 8 March 2026: 02:30 does not exist and runs at 03:00 EDT.
    [gap] = slots(crontab(hour=2, minute=30, tz="America/New_York"), datetime(2026, 3, 8, 0, tzinfo=UTC), 1, NEW_YORK)
    assert gap.isoformat() == "2026-03-08T03:00:00-04:00"


def test_a_crontab_on_every_hour_runs_by_elapsed_time_through_both_passes():
    runs = slots(crontab(minute="*/30", tz="Europe/Paris"), datetime(2026, 10, 24, 23, 0, tzinfo=UTC), 4)
    # 01:30 +02, 02:00 +02, 02:30 +02, 02:00 +01: every 30 minutes of real time, none twice.
    assert [r.astimezone(UTC).strftime("%H:%M") for r in runs] == ["23:30", "00:00", "00:30", "01:00"]
    assert len({r.astimezone(UTC) for r in runs}) == 4


def test_a_crontab_with_the_default_zone_reads_the_project_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    [run] = slots(crontab(hour=9, minute=0), datetime(2026, 1, 5, 0, tzinfo=UTC), 1)
    assert run.astimezone(UTC) == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def test_an_interval_counts_elapsed_seconds_across_dst():
    every_hour = interval(3600)
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 in Paris, just before the gap
    assert [r - start for r in slots(every_hour, start, 3)] == [timedelta(hours=h) for h in (1, 2, 3)]


def test_a_late_run_within_the_grace_fires_its_own_slot():
    due = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    slot, following = plan(interval(1), due, due + timedelta(seconds=3.5), GRACE)
    assert slot == due and following == due + timedelta(seconds=1)


def test_after_downtime_missed_runs_collapse_into_one_for_the_latest_slot():
    due = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    slot, following = plan(interval(60), due, due + timedelta(hours=2, seconds=10), GRACE)
    assert slot == due + timedelta(hours=2) and following == due + timedelta(hours=2, minutes=1)
    nightly = crontab(hour=3, minute=0, tz="Europe/Paris")
    due = nightly.next_after(datetime(2026, 5, 1, tzinfo=UTC))
    slot, following = plan(nightly, due, datetime(2026, 5, 10, 12, tzinfo=UTC), GRACE)
    assert slot == datetime(2026, 5, 10, 3, 0, tzinfo=PARIS) and following == datetime(2026, 5, 11, 3, 0, tzinfo=PARIS)


def test_a_sparse_schedule_catches_up_to_its_latest_slot_beyond_a_day():
    weekly = crontab(hour=8, minute=0, day_of_week="mon", tz="UTC")
    due = weekly.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    slot, _ = plan(weekly, due, datetime(2026, 2, 4, 12, tzinfo=UTC), GRACE)  # a Wednesday
    assert slot == datetime(2026, 2, 2, 8, 0, tzinfo=UTC)


def test_a_one_off_runs_once_even_when_seen_late():
    at = datetime(2026, 6, 1, 9, 0, tzinfo=PARIS)
    assert once(at).first_after(at + timedelta(days=3)) == at
    assert plan(once(at), at, at + timedelta(days=3), GRACE) == (at, None)


def test_settings_values_become_schedules():
    assert to_schedule(30) == interval(30.0)
    assert to_schedule(timedelta(minutes=5)) == interval(300.0)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert to_schedule(at) == once(at)
    assert to_schedule(crontab(minute=0)) == crontab(minute=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("every day", "must be seconds, a timedelta, a datetime, crontab(...) or interval(...), not str"),
        (-1, "must be a positive number of seconds, not -1.0"),
        (crontab(minute=61), "crontab minute=61 is not a valid cron field."),
        (crontab(hour="25"), "crontab hour='25' is not a valid cron field."),
        (crontab(day_of_week="funday"), "crontab day_of_week='funday' is not a valid cron field."),
        (crontab(tz="Europe/Pariss"), "crontab tz='Europe/Pariss' is not a known time zone."),
        (datetime(2030, 1, 1), "needs an aware datetime"),
    ],
)
def test_a_bad_schedule_says_what_is_wrong(value, message):
    with pytest.raises(ScheduleError) as info:
        to_schedule(value)
    assert message in str(info.value)


def test_a_bad_time_zone_suggests_the_close_one():
    with pytest.raises(ScheduleError) as info:
        crontab(tz="Europe/Pariss").validate()
    assert info.value.hint == "Did you mean 'Europe/Paris'?" and info.value.check_id == "djtasks.E075"


def test_an_entry_in_celerys_shape_is_parsed():
    entry = parse_entry(
        "nightly",
        {"task": "app.report", "schedule": crontab(hour=3, minute=0), "args": (1,), "options": {"queue": "reports"}},
    )
    assert entry.task == "app.report" and entry.args == [1] and entry.queue == "reports" and entry.enabled
    with pytest.raises(ScheduleError, match=r"unknown key\(s\) 'shedule'"):
        parse_entry("x", {"task": "app.report", "shedule": 30})


def test_an_entry_with_arguments_json_cannot_carry_is_refused():
    with pytest.raises(ScheduleError, match=r"'args' and 'kwargs' must be JSON-serializable"):
        parse_entry("x", {"task": "app.report", "schedule": 30, "args": ({1, 2},)})
    with pytest.raises(ScheduleError, match=r"priority'\] must be a whole number between -100 and 100"):
        parse_entry("x", {"task": "app.report", "schedule": 30, "options": {"priority": 1000}})


def test_the_task_id_of_a_run_is_the_same_for_every_worker_and_differs_per_slot():
    slot = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert run_task_id("tick", slot) == run_task_id("tick", slot.astimezone(PARIS))
    assert run_task_id("tick", slot) != run_task_id("tick", slot + timedelta(seconds=1))
