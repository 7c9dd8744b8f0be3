"""record/stamps.py: the enqueue time's SQLite text made without a datetime is the field's own text."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

import djtasks
from djtasks.calling import publisher
from djtasks.models import TaskRecord
from djtasks.record import stamps
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's text of a datetime")
FIELD = TaskRecord._meta.get_field("enqueued_at")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Nanoseconds since the epoch up to 2200, whole seconds and whole microseconds included.
INSTANTS = st.one_of(
    st.integers(0, 7_258_118_400 * 10**9),
    st.integers(0, 7_258_118_400).map(lambda s: s * 10**9),
    st.integers(0, 7_258_118_400 * 10**6).map(lambda us: us * 1000),
)


@sqlite_only
@settings(max_examples=200, deadline=None)
@given(st.lists(INSTANTS, min_size=1, max_size=4))
def test_the_text_is_what_the_field_makes_of_that_instant(instants):
    # One after another: the text of the second before is cached, and must not leak into the next.
    for ns in sorted(instants) + instants:
        with mock.patch.object(stamps.time, "time_ns", return_value=ns):
            text = stamps.now_param(timezone.now, connection)
        expected = FIELD.get_db_prep_save(EPOCH + timedelta(microseconds=ns // 1000), connection)
        assert text == expected


def test_other_factories_zones_and_databases_take_the_field_s_own_conversion():
    sqlite = SimpleNamespace(vendor="sqlite", timezone=UTC)
    assert stamps.now_param(timezone.now, sqlite) is not None
    assert stamps.now_param(lambda: timezone.now(), sqlite) is None
    assert stamps.now_param(timezone.now, SimpleNamespace(vendor="sqlite", timezone=None)) is None  # USE_TZ off
    assert stamps.now_param(timezone.now, SimpleNamespace(vendor="sqlite", timezone=ZoneInfo("Europe/Paris"))) is None
    assert stamps.now_param(timezone.now, SimpleNamespace(vendor="postgresql", timezone=UTC)) is None
    with override_settings(USE_TZ=False):  # Django resets the connection's zone: None without USE_TZ
        assert connection.timezone is None and stamps.now_param(timezone.now, connection) is None


@pytest.mark.usefixtures("redis_server")
def test_a_bulk_call_s_enqueue_time_reads_back_as_the_moment_of_the_call():
    before = timezone.now()
    with djtasks.bulk():
        ids = [add.delay(i, 0).id for i in range(3)]
    after = timezone.now()
    publisher.flush()
    times = list(TaskRecord.objects.filter(pk__in=ids).values_list("enqueued_at", flat=True))
    assert len(times) == 3 and all(before - timedelta(milliseconds=1) <= t <= after for t in times)
    assert all(t.tzinfo is not None for t in times)
