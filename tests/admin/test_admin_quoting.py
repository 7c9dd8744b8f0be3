"""Task ids with every character the admin's URL quoting touches: each page shows and acts on its own task."""

import re
from urllib.parse import unquote as url_unquote

import pytest
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth.models import User
from django.test import Client
from django.urls import resolve

from djtasks.models import TaskRecord

pytestmark = pytest.mark.django_db
ADD = "tests.testapp.tasks.add"

# quote() escapes these as _XX; "_" itself, so x:y and x_3Ay must not be confused. Then a few that
# only URL encoding touches (space, %, non-ASCII) and ones an HTML attribute must escape.
AWKWARD = '":/_#?;@&=+$,[]<>%\n\\'
IDS = [*AWKWARD, "x:y", "x_3Ay", "a/b/c", 'say "hi"', "50% off", "é ü 東京", "<b>&amp;</b>", "'", AWKWARD]


@pytest.fixture
def client():
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def links(page: str) -> list[str]:
    return [
        href.replace("&amp;", "&").replace("&quot;", '"').replace("&#x27;", "'")
        for href in re.findall(r'(?:href|action)="(/admin/djtasks/taskrecord/[^"]+)"', page)
    ]


def task_of(url: str) -> str:
    """The task id an admin URL names, as the admin itself unquotes it."""
    return unquote(resolve(url_unquote(url.split("?")[0])).kwargs["object_id"])


@pytest.mark.parametrize("task_id", IDS, ids=repr)
def test_the_detail_page_of_an_awkward_id_shows_that_task_and_its_buttons_act_on_it(client, task_id):
    decoy = quote(task_id)  # the id that a page forgetting to unquote would show instead
    TaskRecord.objects.create(id=task_id, task_name=ADD, state="PENDING", kwargs={"marker": "the-real-one"})
    if decoy != task_id:
        TaskRecord.objects.create(id=decoy, task_name=ADD, state="PENDING", kwargs={"marker": "the-decoy"})
    TaskRecord.objects.create(id="child-of-it", task_name="app.child", parent_id=task_id, group_id=task_id)
    TaskRecord.objects.create(id="sibling", task_name="app.sibling", group_id=task_id)
    response = client.get(f"/admin/djtasks/taskrecord/{quote(task_id)}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "the-real-one" in page and "the-decoy" not in page, "the page shows another task's sections"
    actions = {url.rstrip("/").rsplit("/", 1)[-1]: url for url in links(page) if url.endswith(("/retry/", "/revoke/"))}
    assert {task_of(url) for url in actions.values()} == {task_id}
    client.post(actions["revoke"])
    states = dict(TaskRecord.objects.values_list("id", "state"))
    assert states[task_id] == "REVOKED" and (decoy == task_id or states[decoy] == "PENDING")
    client.post(actions["retry"])
    assert TaskRecord.objects.filter(parent_id=task_id).exclude(pk="child-of-it").count() == 1


@pytest.mark.parametrize("task_id", IDS, ids=repr)
def test_links_to_parents_children_and_group_members_reach_their_task(client, task_id):
    TaskRecord.objects.create(id=task_id, task_name="app.parent", group_id="g")
    TaskRecord.objects.create(id="child", task_name="app.child", parent_id=task_id, root_id=task_id, group_id="g")
    child_page = client.get("/admin/djtasks/taskrecord/child/change/").content.decode()
    assert task_id in {task_of(url) for url in links(child_page)}, "the parent and group links lose the id"
    parent_page = client.get(f"/admin/djtasks/taskrecord/{quote(task_id)}/change/").content.decode()
    assert "child" in {task_of(url) for url in links(parent_page)}
    listed = client.get("/admin/djtasks/taskrecord/").content.decode()
    assert task_id in {task_of(url) for url in links(listed)}


def test_a_url_that_names_no_task_redirects_with_a_message_rather_than_showing_another(client):
    TaskRecord.objects.create(id="x_3Ay", task_name="app.decoy")
    response = client.get(f"/admin/djtasks/taskrecord/{quote('x:y')}/change/")
    assert response.status_code == 302
    assert client.post(f"/admin/djtasks/taskrecord/{quote('x:y')}/revoke/").status_code == 404
    assert TaskRecord.objects.get(pk="x_3Ay").state == "PENDING"
