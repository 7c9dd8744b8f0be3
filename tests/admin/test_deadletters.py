"""Requeueing dead letters: a task that already finished runs again only after an explicit confirmation."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from djtasks import publisher
from djtasks.calling.deadletters import requeue
from djtasks.models import DeadLetter, TaskRecord
from djtasks.transport.broker import get_broker

pytestmark = pytest.mark.django_db
URL = "/admin/djtasks/deadletter/"
ADD = "tests.testapp.tasks.add"


@pytest.fixture
def client():
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def letter_for(task_id, state, **row):
    TaskRecord.objects.create(id=task_id, task_name=ADD, state=state, args=[1, 2], **row)
    return DeadLetter.objects.create(task_id=task_id, task_name=ADD, queue="default", reason="worker lost")


def shown_messages(page: str) -> list[str]:
    """The messages on a page, without the capital letter the admin's template gives them."""
    found = re.findall(r'<li class="(?:success|warning|error)">(.*?)</li>', page, re.S)
    return sorted(html.unescape(m[:1].lower() + m[1:]) for m in found)


@pytest.mark.parametrize("state", ["SUCCESS", "FAILURE", "REVOKED"])
def test_requeue_of_a_finished_task_asks_first_and_says_which_are_finished(client, state):
    done = letter_for("t-done", state, finished_at=timezone.now())
    waiting = letter_for("t-waiting", "PENDING")
    selection = {"action": "requeue", "_selected_action": [done.pk, waiting.pk]}
    page = client.post(URL, selection)
    body = page.content.decode()
    assert page.status_code == 200 and "run them again" in body
    rows = dict(re.findall(r"<tr><td>(t-\w+)</td><td>[^<]*</td><td>(.*?)</td></tr>", body))
    assert state in rows["t-done"] and "not finished" in rows["t-waiting"]
    assert DeadLetter.objects.count() == 2 and TaskRecord.objects.get(pk="t-done").state == state, "nothing yet"
    confirmed = client.post(URL, {**selection, "run_finished_again": "yes"}, follow=True)
    assert shown_messages(confirmed.content.decode()) == ["t-done: requeued", "t-waiting: requeued"]
    assert set(TaskRecord.objects.values_list("state", flat=True)) == {"PENDING"} and not DeadLetter.objects.exists()


def test_requeue_of_unfinished_tasks_needs_no_confirmation(client):
    waiting = letter_for("t-waiting", "RETRY")
    page = client.post(URL, {"action": "requeue", "_selected_action": [waiting.pk]}, follow=True)
    assert shown_messages(page.content.decode()) == ["t-waiting: requeued"]
    assert TaskRecord.objects.get(pk="t-waiting").state == "PENDING" and not DeadLetter.objects.exists()


def test_requeue_says_when_a_letter_has_no_row_or_its_task_runs_now(client):
    orphan = DeadLetter.objects.create(task_id="gone", queue="default", reason="malformed message")
    running = letter_for("t-running", "STARTED", lease_expires_at=timezone.now() + timedelta(minutes=1), worker="w1")
    page = client.post(URL, {"action": "requeue", "_selected_action": [orphan.pk, running.pk]}, follow=True)
    assert shown_messages(page.content.decode()) == [
        "gone: not requeued: it has no task row (the message itself was malformed)",
        "t-running: not requeued: it is running now (worker w1)",
    ]
    assert DeadLetter.objects.count() == 2 and TaskRecord.objects.get(pk="t-running").state == "STARTED"


def test_requeue_refuses_a_finished_task_unless_told_to_run_it_again(redis_server, django_capture_on_commit_callbacks):
    letter = letter_for("t-done", "SUCCESS", finished_at=timezone.now(), result=3)
    outcome = requeue(letter)
    assert not outcome.done and outcome.text == "t-done: not requeued: the task already ended SUCCESS"
    assert TaskRecord.objects.get(pk="t-done").state == "SUCCESS" and DeadLetter.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue(letter, run_finished=True).done
    assert TaskRecord.objects.get(pk="t-done").state == "PENDING"
    publisher.flush()
    assert get_broker().known(["t-done"]) == [True]
