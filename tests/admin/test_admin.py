"""Task rows in the admin: list, filters, search and a readable detail page."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djtasks.models import TaskRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rows():
    TaskRecord.objects.create(id="t-ok", task_name="app.tasks.add", state="SUCCESS", args=[1, 2], result=3)
    TaskRecord.objects.create(
        id="t-bad",
        task_name="app.tasks.fail",
        state="FAILURE",
        queue="mail",
        kwargs={"to": "<b>x</b>"},
        exception_type="builtins.ValueError",
        exception_message="nope",
        traceback="Traceback (most recent...)",
    )


def test_the_list_shows_state_name_queue_and_filters(admin_client, rows):
    page = admin_client.get("/admin/djtasks/taskrecord/").content.decode()
    assert "t-ok" in page and "t-bad" in page and "app.tasks.fail" in page and "Failure" in page
    filtered = admin_client.get("/admin/djtasks/taskrecord/?state__exact=FAILURE").content.decode()
    assert "t-bad" in filtered and "t-ok" not in filtered
    by_queue = admin_client.get("/admin/djtasks/taskrecord/?queue=mail").content.decode()
    assert "t-bad" in by_queue and "t-ok" not in by_queue


def test_search_by_id_and_name(admin_client, rows):
    assert "t-ok" not in admin_client.get("/admin/djtasks/taskrecord/?q=t-bad").content.decode()
    assert "t-bad" in admin_client.get("/admin/djtasks/taskrecord/?q=fail").content.decode()


def test_the_detail_shows_arguments_result_and_traceback_escaped(admin_client, rows):
    page = admin_client.get("/admin/djtasks/taskrecord/t-bad/change/").content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "Traceback (most recent...)" in page and "nope" in page


def test_rows_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/djtasks/taskrecord/add/").status_code == 403
