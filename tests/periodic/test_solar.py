"""Solar schedules (Celery's solar): event times against published almanac values, checked as settings are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from djtasks.models import PeriodicTask
from djtasks.periodic.beat import plan
from djtasks.schedules import ScheduleError, parse_entry, solar

# (event, latitude, longitude, a moment before it, the published time in UTC). Sources: the US Naval
# Observatory / timeanddate.com tables (to the minute; astral follows NOAA's equations).
KNOWN = [
    ("sunrise", 48.8566, 2.3522, datetime(2024, 6, 21, 0, 0, tzinfo=UTC), datetime(2024, 6, 21, 3, 47, tzinfo=UTC)),
    ("sunset", 48.8566, 2.3522, datetime(2024, 6, 21, 12, 0, tzinfo=UTC), datetime(2024, 6, 21, 19, 58, tzinfo=UTC)),
    ("sunrise", 40.7128, -74.006, datetime(2024, 3, 20, 0, 0, tzinfo=UTC), datetime(2024, 3, 20, 10, 59, tzinfo=UTC)),
    ("sunset", 40.7128, -74.006, datetime(2024, 3, 20, 12, 0, tzinfo=UTC), datetime(2024, 3, 20, 23, 10, tzinfo=UTC)),
    # Sydney's sunrise of 22 December (AEDT) is on 21 December in UTC.
    (
        "sunrise",
        -33.8688,
        151.2093,
        datetime(2024, 12, 21, 12, 0, tzinfo=UTC),
        datetime(2024, 12, 21, 18, 41, tzinfo=UTC),
    ),
    ("sunset", -33.8688, 151.2093, datetime(2024, 12, 21, 0, 0, tzinfo=UTC), datetime(2024, 12, 21, 9, 5, tzinfo=UTC)),
    ("solar_noon", 0.0, 0.0, datetime(2024, 1, 1, 0, 0, tzinfo=UTC), datetime(2024, 1, 1, 12, 3, tzinfo=UTC)),
    (
        "dusk_civil",
        48.8566,
        2.3522,
        datetime(2024, 6, 21, 12, 0, tzinfo=UTC),
        datetime(2024, 6, 21, 20, 42, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("event", "lat", "lon", "after", "published"), KNOWN)
def test_solar_events_fall_on_the_published_minute(event, lat, lon, after, published):
    slot = solar(event, lat, lon).next_after(after)
    assert slot is not None and abs(slot - published) <= timedelta(minutes=2), slot


def test_the_next_slot_is_the_next_days_event_and_never_the_moment_itself():
    sunset = solar("sunset", 48.8566, 2.3522)
    today = sunset.next_after(datetime(2024, 6, 21, 12, 0, tzinfo=UTC))
    assert today is not None
    tomorrow = sunset.next_after(today)
    assert tomorrow is not None and timedelta(hours=23, minutes=55) < tomorrow - today < timedelta(hours=24, minutes=5)
    slot, following = plan(sunset, today, today + timedelta(seconds=1), timedelta(seconds=5))
    assert slot == today and following == tomorrow


def test_a_day_without_the_event_has_no_slot_the_next_one_comes_when_the_sun_sets_again():
    # Tromso has the midnight sun from late May to late July: no sunset in between.
    slot = solar("sunset", 69.6492, 18.9553).next_after(datetime(2024, 6, 1, tzinfo=UTC))
    assert slot is not None and datetime(2024, 7, 20, tzinfo=UTC) < slot < datetime(2024, 7, 27, tzinfo=UTC), slot
    # Paris in June: the sun never gets 18 degrees below the horizon, so no astronomical dusk.
    dusk = solar("dusk_astronomical", 48.8566, 2.3522).next_after(datetime(2024, 6, 21, tzinfo=UTC))
    assert dusk is not None and dusk > datetime(2024, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "says"),
    [(("sunsett", 1, 2), "Did you mean 'sunset'"), (("sunset", 91, 0), "lat=91"), (("sunset", 0, True), "lon=True")],
)
def test_a_bad_solar_schedule_is_refused_with_a_hint(args, says):
    with pytest.raises(ScheduleError) as info:
        solar(*args).validate()
    assert says in f"{info.value} {info.value.hint}" and info.value.check_id == "djtasks.E076"


def test_beat_schedule_and_the_periodic_task_row_take_a_solar_schedule():
    entry = parse_entry("evening", {"task": "tests.testapp.tasks.stamp", "schedule": solar("sunset", 48.85, 2.35)})
    assert entry.schedule == solar("sunset", 48.85, 2.35)
    row = PeriodicTask(name="evening", task="tests.testapp.tasks.stamp")
    row.set_schedule(entry.schedule)
    assert (row.solar_event, row.latitude, row.longitude) == ("sunset", 48.85, 2.35)
    assert row.schedule == entry.schedule and row.schedule.describe() == "sunset at 48.85, 2.35"
    placeless = PeriodicTask(name="x", task="tests.testapp.tasks.stamp", solar_event="sunrise", longitude=2.0)
    with pytest.raises(ScheduleError, match="lat=None"):
        placeless.schedule.validate()


def test_the_row_refuses_a_solar_event_beside_another_schedule_or_without_its_place():
    both = PeriodicTask(name="x", task="tests.testapp.tasks.stamp", solar_event="sunrise", latitude=1, longitude=2)
    both.interval = 60.0
    with pytest.raises(ValidationError, match="exactly one of"):
        both.clean()
    placeless = PeriodicTask(
        name="y", task="tests.testapp.tasks.stamp", solar_event="sunrise", latitude=100, longitude=2
    )
    with pytest.raises(ValidationError) as info:
        placeless.clean()
    assert "solar_event" in info.value.message_dict
