"""The metrics view: Prometheus exposition computed from the shared stores, for staff or a token."""

import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from djtasks.models import DeadLetter
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, fail, flaky, sleep_then_record

pytestmark = [pytest.mark.django_db(transaction=True)]
TOKEN = "a-long-enough-metrics-token"


def families(client) -> dict:
    response = client.get("/metrics/")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(family, **labels) -> float:
    return sum(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_outcomes_time_runs_and_show_queues_and_workers(worker, client):
    worker()
    for i in range(5):
        add.delay(i, i).get(timeout=20)
    fail.delay().get(timeout=20, propagate=False)
    flaky.delay("metrics", 2).get(timeout=30)
    sleep_then_record.apply_async(("later", 0), countdown=60)
    DeadLetter.objects.create(task_id="x", reason="test")
    client.force_login(User.objects.create_user("staff", is_staff=True))
    assert wait_for(lambda: value(families(client)["djtasks_tasks"], state="FAILURE") == 1, timeout=10)
    found = families(client)
    assert value(found["djtasks_tasks"], task="tests.testapp.tasks.add", queue="default", state="SUCCESS") == 5
    runtime = found["djtasks_task_runtime_seconds"]
    count = [s for s in runtime.samples if s.name.endswith("_count") and s.labels["task"] == "tests.testapp.tasks.add"]
    inf = [s for s in runtime.samples if s.labels.get("le") == "+Inf" and s.labels["task"] == "tests.testapp.tasks.add"]
    assert count[0].value == 5 and inf[0].value == 5
    assert value(found["djtasks_task_wait_seconds"], task="tests.testapp.tasks.add") > 0
    assert value(found["djtasks_queue_depth"], queue="default", state="scheduled") == 1
    assert value(found["djtasks_workers_online"]) == 1
    assert value(found["djtasks_dead_letters"]) == 1
    assert value(found["djtasks_task_retries"], task="tests.testapp.tasks.flaky") == 1


def test_metrics_require_staff_or_the_bearer_token(client, redis_server):
    assert client.get("/metrics/").status_code == 401
    client.force_login(User.objects.create_user("plain"))
    assert client.get("/metrics/").status_code == 401
    client.logout()
    with override_settings(DJTASKS={**settings.DJTASKS, "METRICS_TOKEN": TOKEN}):
        assert client.get("/metrics/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/metrics/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_a_counter_that_is_not_a_number_is_skipped_and_counted_afresh(worker, client, caplog):
    broker = get_broker()
    done = broker.stats_key("done")
    field = json.dumps(["tests.testapp.tasks.add", "default", "SUCCESS"])
    broker.client.hset(done, mapping={field: "not a number", b"\xff": "1", '["x", "y", "SUCCESS"]': "2"})
    broker.client.hset(broker.stats_key("runtime"), mapping={'["x", 99]': "1", '["x", "sum"]': "inf"})
    client.force_login(User.objects.create_user("staff", is_staff=True))
    found = families(client)  # 200, not 500
    assert value(found["djtasks_tasks"], task="x", state="SUCCESS") == 2
    assert value(found["djtasks_tasks"], task="tests.testapp.tasks.add") == 0
    assert f"Skipped an entry of {done}" in caplog.text
    worker()
    add.delay(1, 1).get(timeout=20)
    # The worker's increment met the garbage, restarted the counter from 1 and said so.
    assert wait_for(lambda: broker.client.hget(done, field) == b"1", timeout=10)
    assert value(families(client)["djtasks_tasks"], task="tests.testapp.tasks.add", state="SUCCESS") == 1
