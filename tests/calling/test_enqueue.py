"""Enqueueing writes the row in the caller's transaction and publishes after commit."""

import logging
import weakref
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import transaction
from django.tasks.signals import log_task_enqueued, task_enqueued
from django.test import override_settings
from django.utils import timezone

from djtasks import AsyncResult
from djtasks.backend import RedisBackend
from djtasks.calling import publisher
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import InvalidCall
from djtasks.models import TaskRecord
from djtasks.record.convert import to_task_result
from djtasks.transport.broker import Broker, get_broker
from djtasks.worker.maintenance import sweep
from tests.testapp.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]


def test_delay_writes_a_pending_row_and_publishes_it():
    result = add.delay(2, 3)
    record = TaskRecord.objects.get(pk=result.id)
    assert (record.state, record.task_name, record.args, record.queue) == (
        "PENDING",
        add.registered_name,
        [2, 3],
        "default",
    )
    publisher.flush()  # delay() sends the publish; Redis's reply is read later
    assert get_broker().known([result.id]) == [True]
    assert result.state == "PENDING"


def test_nothing_is_published_before_commit():
    with transaction.atomic():
        result = add.delay(1, 1)
        assert get_broker().known([result.id]) == [False]
    publisher.flush()
    assert get_broker().known([result.id]) == [True]


def test_a_rollback_leaves_neither_row_nor_message():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = add.delay(1, 1)
        raise RuntimeError
    assert not TaskRecord.objects.filter(pk=result.id).exists()
    assert get_broker().known([result.id]) == [False]
    assert get_broker().queue_stats().get("default", {}).get("ready", 0) == 0


def test_a_rolled_back_savepoint_publishes_only_what_survived():
    with transaction.atomic():
        kept = add.delay(1, 1)
        with pytest.raises(RuntimeError), transaction.atomic():
            dropped = add.delay(2, 2)
            raise RuntimeError
        also_kept = add.delay(3, 3)
    publisher.flush()
    assert get_broker().known([kept.id, dropped.id, also_kept.id]) == [True, False, True]


def test_many_enqueues_in_one_transaction_publish_in_one_round_trip():
    with mock.patch.object(Broker, "publish_nowait", autospec=True, side_effect=Broker.publish_nowait) as publish:
        with transaction.atomic():
            results = [add.delay(i, i) for i in range(200)]
    assert publish.call_count == 1
    publisher.flush()
    assert all(get_broker().known([r.id for r in results]))


def test_a_publish_refused_with_noscript_is_sent_again_and_arrives():
    get_broker().client.script_flush()  # as after a Redis restart: the publish script is unknown
    result = add.delay(1, 2)
    publisher.flush()
    assert get_broker().known([result.id]) == [True]


def test_a_publish_whose_connection_broke_is_left_to_the_outbox_sweep(redis_server):
    first = add.delay(1, 1)
    publisher.flush()
    get_broker().client.client_kill_filter(skipme=True, _type="normal")  # drops the sending connection too
    second = add.delay(2, 2)  # the send fails or its reply never comes: no error for the caller
    publisher.flush()
    assert get_broker().known([second.id]) == [False]
    TaskRecord.objects.update(enqueued_at=timezone.now() - timedelta(seconds=5))  # past the sweep's grace
    assert sweep(get_broker(), get_settings(), full=False) == 1
    assert get_broker().known([first.id, second.id]) == [True, True]


def test_apply_async_takes_task_id_queue_and_priority():
    result = add.apply_async((1, 2), task_id="my-id", queue="hipri", priority=7)
    record = TaskRecord.objects.get(pk="my-id")
    assert (result.id, record.queue, record.priority) == ("my-id", "hipri", 7)
    assert get_broker().queue_stats()["hipri"]["ready"] == 1


def test_unknown_apply_async_option_is_a_type_error():
    with pytest.raises(TypeError, match="apply_async"):
        add.apply_async((1, 2), retries_please=3)


def test_countdown_waits_in_the_scheduled_set():
    result = add.apply_async((1, 2), countdown=60)
    assert TaskRecord.objects.get(pk=result.id).eta is not None
    get_broker().flush_publishes()  # the publish is sent without waiting for its reply, on its own connection
    assert get_broker().queue_stats()["default"]["scheduled"] == 1


def test_unserializable_arguments_fail_at_the_call_and_write_nothing():
    with pytest.raises(TypeError, match=r"Argument args\[1\] of task tests.testapp.tasks.add is not JSON-serializable"):
        add.delay(1, object())
    with pytest.raises(TypeError, match=r"kwargs\['y'\]"):
        add.delay(1, y={1, 2})
    assert TaskRecord.objects.count() == 0


def test_enqueue_succeeds_while_redis_is_down_and_the_sweep_publishes_later(redis_server):
    redis_server.stop()
    try:
        result = add.delay(5, 5)  # must not raise
        assert TaskRecord.objects.get(pk=result.id).state == "PENDING"
    finally:
        redis_server.start()
    assert get_broker().known([result.id]) == [False]
    config = get_settings()
    TaskRecord.objects.filter(pk=result.id).update(enqueued_at=timezone.now() - timedelta(seconds=5))
    assert sweep(get_broker(), config, full=False) == 1
    assert get_broker().known([result.id]) == [True]
    assert sweep(get_broker(), config, full=False) == 0


def test_async_result_of_an_unknown_id_is_pending():
    assert AsyncResult("no-such-id").state == "PENDING"
    assert AsyncResult("no-such-id").ready() is False


def test_a_task_s_queue_follows_the_routes_and_default_queue_in_force_at_each_call():
    # enqueue() keeps each task's resolved queue for the settings object it was resolved under.
    def queue_of(**options):
        return TaskRecord.objects.get(pk=add.apply_async((1, 2), **options).id).queue

    assert queue_of() == "default"
    base = settings.DJTASKS
    with override_settings(DJTASKS={**base, "ROUTES": {add.registered_name: "first"}}):
        assert queue_of() == "first"
        assert queue_of(queue="mine") == "mine"
    with override_settings(DJTASKS={**base, "ROUTES": {"tests.testapp.*": {"queue": "globbed"}}}):
        assert queue_of() == queue_of() == "globbed"
    with override_settings(DJTASKS={**base, "DEFAULT_QUEUE": "fallback"}):
        assert queue_of() == "fallback"
    assert queue_of() == "default"
    with override_settings(DJTASKS={**base, "ROUTES": {add.registered_name: "q" * 101}}):
        for _ in range(2):  # a refused queue name is refused at every call, not remembered
            with pytest.raises(InvalidCall, match="queue name"):
                add.delay(1, 2)
        assert queue_of(queue="ok") == "ok"


class OtherBackend(RedisBackend):
    """The djtasks backend under another class: task_enqueued's sender."""


def test_task_enqueued_is_sent_by_the_class_of_the_backend_in_force_at_each_call():
    senders = []

    def capture(sender, task_result, **kwargs):
        senders.append((sender, task_result.id, task_result.args))

    task_enqueued.connect(capture)
    try:
        first = add.delay(1, 2)
        other = {**settings.TASKS, "default": {**settings.TASKS["default"], "BACKEND": f"{__name__}.OtherBackend"}}
        with override_settings(TASKS=other):
            second = add.delay(3, 4)
        third = add.delay(5, 6)
    finally:
        task_enqueued.disconnect(capture)
    assert senders == [
        (RedisBackend, first.id, [1, 2]),
        (OtherBackend, second.id, [3, 4]),
        (RedisBackend, third.id, [5, 6]),
    ]


@pytest.fixture
def only_django_s_log_receiver():
    """task_enqueued as a project without receivers of its own has it: only Django's log_task_enqueued."""
    assert [r() if isinstance(r, weakref.ReferenceType) else r for _, r, *_ in task_enqueued.receivers] == [
        log_task_enqueued
    ]
    yield


@pytest.mark.usefixtures("only_django_s_log_receiver")
def test_django_s_enqueue_log_record_is_written_whenever_its_logger_takes_debug(caplog):
    with mock.patch("djtasks.calling.enqueue.to_task_result", wraps=to_task_result) as built:
        with caplog.at_level(logging.INFO, logger="django.tasks"):
            quiet = add.delay(1, 2)
        assert built.call_count == 0  # the record would be dropped: no TaskResult is built for it
        with caplog.at_level(logging.DEBUG, logger="django.tasks"):
            heard = add.delay(3, 4)
        assert built.call_count == 1
        seen = []
        task_enqueued.connect(listener := lambda sender, task_result, **kw: seen.append(task_result.id))
        try:
            with caplog.at_level(logging.INFO, logger="django.tasks"):
                third = add.delay(5, 6)
        finally:
            task_enqueued.disconnect(listener)
    logged = [r.getMessage() for r in caplog.records if r.name == "django.tasks"]
    assert logged == [f"Task id={heard.id} path={add.module_path} enqueued backend=default"]
    assert quiet.id not in "".join(logged) and seen == [third.id] and built.call_count == 2
