"""The beat duty in-process, with an injectable clock, the real database and the real Redis."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from djtasks.models import PeriodicRun, PeriodicTask, Source, TaskRecord
from djtasks.periodic.beat import Beat, run_now, sync_settings
from djtasks.schedules import crontab
from djtasks.transport.broker import get_broker

pytestmark = [pytest.mark.django_db(transaction=True)]
T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ADD = "tests.testapp.tasks.add"


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


def every(seconds, name="tick", **fields):
    row = PeriodicTask(name=name, task=ADD, args=[1, 2], interval=seconds, **fields)
    row.plan_first_run(T0)
    row.save()
    return row


def runs(name="tick"):
    return list(PeriodicRun.objects.filter(periodic_task__name=name).order_by("scheduled_for"))


def test_a_due_run_fires_once_and_writes_the_task_row(redis_server):
    row = every(10)
    clock = Clock()
    beat = Beat("w1", "default", clock, min_interval=0)
    assert beat.tick() == 0
    clock.advance(seconds=10)
    assert beat.tick() == 1 and beat.tick() == 0
    [run] = runs()
    assert run.scheduled_for == T0 + timedelta(seconds=10) and run.worker == "w1"
    task = TaskRecord.objects.get(pk=run.task_id)
    assert task.task_name == ADD and task.args == [1, 2] and task.state == "PENDING"
    row.refresh_from_db()
    assert row.last_run_at == run.scheduled_for and row.next_run_at == T0 + timedelta(seconds=20)
    assert row.total_run_count == 1


def test_two_workers_ticking_the_same_moment_fire_once(redis_server):
    every(5)
    clock = Clock(T0 + timedelta(seconds=5))
    first, second = Beat("w1", "default", clock, min_interval=0), Beat("w2", "default", clock, min_interval=0)
    assert first.tick() + second.tick() == 1
    assert len(runs()) == 1 and TaskRecord.objects.count() == 1


def test_a_worker_that_lost_the_race_for_the_row_changes_nothing(redis_server):
    """Redis forgot the run key (or was flushed): the database fence still refuses a second run."""
    every(5)
    clock = Clock(T0 + timedelta(seconds=5))
    stale = list(PeriodicTask.objects.all())  # what a slow second worker read before the first fired
    assert Beat("w1", "default", clock, min_interval=0).tick() == 1
    get_broker().client.flushall()
    late = Beat("w2", "default", clock, min_interval=0)
    late.synced = True
    assert late.fire(stale[0], clock(), timedelta(seconds=5)) is False
    assert len(runs()) == 1 and TaskRecord.objects.count() == 1


def test_a_run_key_held_by_a_dead_worker_delays_the_run_but_does_not_lose_it(redis_server):
    row = every(5)
    due_ms = int(row.next_run_at.timestamp() * 1000)
    get_broker().acquire(f"beat:{row.pk}:{due_ms}", "dead-worker", 300)  # it died right after claiming
    clock = Clock(T0 + timedelta(seconds=5))
    beat = Beat("w2", "default", clock, min_interval=0)
    assert beat.tick() == 0
    get_broker().client.delete(
        get_broker().coordination_key("lock", f"beat:{row.pk}:{due_ms}")
    )  # the key's TTL ran out
    assert beat.tick() == 1 and len(runs()) == 1


def test_with_redis_down_the_database_alone_fires_each_run_once(redis_server):
    every(5)
    clock = Clock(T0 + timedelta(seconds=5))
    redis_server.stop()
    try:
        first, second = Beat("w1", "default", clock, min_interval=0), Beat("w2", "default", clock, min_interval=0)
        assert first.tick() + second.tick() == 1
    finally:
        redis_server.start()
    assert len(runs()) == 1


def test_after_downtime_one_run_fires_for_the_latest_missed_slot(redis_server):
    every(60)
    clock = Clock(T0 + timedelta(hours=3, seconds=30))
    beat = Beat("w1", "default", clock, min_interval=0)
    assert beat.tick() == 1 and beat.tick() == 0
    [run] = runs()
    assert run.scheduled_for == T0 + timedelta(hours=3)
    assert PeriodicTask.objects.get().next_run_at == T0 + timedelta(hours=3, minutes=1)


def test_a_run_late_within_the_grace_keeps_every_slot(redis_server):
    every(1)
    clock = Clock(T0 + timedelta(seconds=3.5))  # a busy parent ticked 2.5 s late
    assert Beat("w1", "default", clock, min_interval=0).tick() == 3
    assert [r.scheduled_for - T0 for r in runs()] == [timedelta(seconds=s) for s in (1, 2, 3)]


def test_a_disabled_task_does_not_fire_and_re_enabling_it_replans(redis_server):
    row = every(5, enabled=False)
    clock = Clock(T0 + timedelta(minutes=10))
    beat = Beat("w1", "default", clock, min_interval=0)
    assert beat.tick() == 0
    row.enabled = True
    row.plan_first_run(clock())
    row.save()
    assert beat.tick() == 0  # re-enabled tasks do not make up for the time they were off
    clock.advance(seconds=5)
    assert beat.tick() == 1


def test_a_one_off_fires_once_then_disables_itself(redis_server):
    row = PeriodicTask(name="once", task=ADD, one_off_at=T0 + timedelta(minutes=1))
    row.plan_first_run(T0)
    row.save()
    clock = Clock(T0 + timedelta(minutes=5))
    beat = Beat("w1", "default", clock, min_interval=0)
    assert beat.tick() == 1 and beat.tick() == 0
    row.refresh_from_db()
    assert not row.enabled and row.next_run_at is None and row.last_run_at == T0 + timedelta(minutes=1)


def test_an_unregistered_task_is_skipped_and_the_schedule_moves_on(redis_server, caplog):
    PeriodicTask.objects.create(name="ghost", task="no.such.task", interval=5, next_run_at=T0)
    assert Beat("w1", "default", Clock(), min_interval=0).tick() == 0
    assert "names unregistered task no.such.task" in caplog.text
    assert PeriodicTask.objects.get().next_run_at == T0 + timedelta(seconds=5)


def test_run_now_enqueues_outside_the_schedule(redis_server):
    row = every(3600)
    task_id = run_now(row)
    [run] = runs()
    assert run.manual and run.task_id == task_id and TaskRecord.objects.filter(pk=task_id).exists()
    row.refresh_from_db()
    assert row.total_run_count == 1 and row.next_run_at == T0 + timedelta(hours=1)


SCHEDULE = {
    "cleanup": {"task": ADD, "schedule": 30.0, "args": (1, 1)},
    "nightly": {"task": ADD, "schedule": crontab(hour=3, minute=0, tz="Europe/Paris"), "options": {"queue": "q2"}},
}


@override_settings(DJTASKS={"BEAT_SCHEDULE": SCHEDULE})
def test_settings_are_synced_to_rows():
    sync_settings("default", T0)
    sync_settings("default", T0 + timedelta(seconds=1))  # a second worker starting changes nothing
    cleanup, nightly = PeriodicTask.objects.order_by("name")
    assert cleanup.source == Source.SETTINGS and cleanup.interval == 30.0 and cleanup.args == [1, 1]
    assert cleanup.next_run_at == T0 + timedelta(seconds=30)
    assert nightly.crontab == "0 3 * * *" and nightly.timezone == "Europe/Paris" and nightly.queue == "q2"
    assert nightly.next_run_at == datetime(2026, 6, 2, 1, 0, tzinfo=UTC)


def test_a_changed_entry_is_updated_a_removed_one_disabled_and_admin_rows_kept():
    PeriodicTask.objects.create(name="by-hand", task=ADD, interval=60, next_run_at=T0)
    with override_settings(DJTASKS={"BEAT_SCHEDULE": SCHEDULE}):
        sync_settings("default", T0)
    PeriodicTask.objects.filter(name="nightly").update(enabled=False)  # an admin switched it off
    changed = {"cleanup": {**SCHEDULE["cleanup"], "schedule": 60.0}, "nightly": SCHEDULE["nightly"]}
    with override_settings(DJTASKS={"BEAT_SCHEDULE": changed}):
        sync_settings("default", T0 + timedelta(seconds=5))
    cleanup = PeriodicTask.objects.get(name="cleanup")
    assert cleanup.interval == 60.0 and cleanup.next_run_at == T0 + timedelta(seconds=65)
    assert PeriodicTask.objects.get(name="nightly").enabled is False  # the admin's choice stands
    with override_settings(DJTASKS={"BEAT_SCHEDULE": {"nightly": SCHEDULE["nightly"]}}):
        sync_settings("default", T0 + timedelta(seconds=10))
    cleanup = PeriodicTask.objects.get(name="cleanup")
    assert cleanup.source == Source.REMOVED and not cleanup.enabled
    assert PeriodicTask.objects.get(name="by-hand").enabled
    with override_settings(DJTASKS={"BEAT_SCHEDULE": changed}):
        sync_settings("default", T0 + timedelta(seconds=20))
    cleanup = PeriodicTask.objects.get(name="cleanup")
    assert cleanup.source == Source.SETTINGS and cleanup.enabled  # back in settings, back on


def walk_night(beat, clock, start, hours=6, step_minutes=5):
    clock.now = start
    fired = 0
    for _ in range(hours * 60 // step_minutes):
        clock.advance(minutes=step_minutes)
        fired += beat.tick()
    return fired


@pytest.mark.parametrize(
    ("night", "expected"),
    [
        # Spring forward, 29 March 2026: 02:30 does not exist; the run happens at 03:00 CEST (01:00 UTC).
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # Fall back, 25 October 2026: 02:30 happens twice; the run happens at the first, 02:30 CEST (00:30 UTC).
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_the_beat_fires_a_paris_crontab_once_through_a_dst_night(redis_server, night, expected):
    row = PeriodicTask(name="nightly", task=ADD, crontab="30 2 * * *", timezone="Europe/Paris")
    row.plan_first_run(night)
    row.save()
    clock = Clock()
    assert walk_night(Beat("w1", "default", clock, min_interval=0), clock, night) == 1
    [run] = runs("nightly")
    assert run.scheduled_for == expected


def test_a_run_that_cannot_be_enqueued_is_skipped_once_and_the_schedule_moves_on(redis_server, caplog):
    PeriodicTask.objects.create(name="bad", task=ADD, interval=5, priority=1000, next_run_at=T0)
    beat = Beat("w1", "default", Clock(), min_interval=0)
    assert beat.tick() == 0 and beat.tick() == 0
    assert caplog.text.count("run at 2026-06-01T12:00:00+00:00 skipped") == 1
    row = PeriodicTask.objects.get()
    assert row.next_run_at == T0 + timedelta(seconds=5) and not PeriodicRun.objects.exists()
    assert not TaskRecord.objects.exists()


def test_a_hand_edited_row_with_no_schedule_is_disabled_once(redis_server, caplog):
    PeriodicTask.objects.create(name="broken", task=ADD, next_run_at=T0)
    beat = Beat("w1", "default", Clock(), min_interval=0)
    assert beat.tick() == 0 and beat.tick() == 0
    assert caplog.text.count("has a bad schedule and is disabled") == 1
    assert not PeriodicTask.objects.get().enabled
