"""The admin shows unique keys and what they answered, and the caps and rate buckets by key, to whom it may."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from djtasks import publisher
from djtasks.transport.broker import get_broker
from tests.testapp.gated_tasks import capped, per_customer, unique_work

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]
DASHBOARD = "/admin/djtasks/dashboard/?partial=1"


def client_for(*permissions: str, superuser: bool = False) -> Client:
    user = User.objects.create_user(f"u{User.objects.count()}", password="x", is_staff=True, is_superuser=superuser)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def detail(client: Client, task_id: str) -> str:
    response = client.get(reverse("admin:djtasks_taskrecord_change", args=[quote(task_id)]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_detail_page_shows_the_unique_key_and_the_duplicates_it_answered():
    first = unique_work.apply_async(("x",), unique_key="customer-acme-key", unique_for=60)
    for _ in range(3):
        assert unique_work.apply_async(("y",), unique_key="customer-acme-key", unique_for=60).id == first.id
    page = detail(client_for(superuser=True), first.id)
    assert "customer-acme-key" in page and "duplicate enqueues it answered" in page
    assert "<td>3, the last " in page and "<td>yes</td>" in page  # it holds its key


def test_without_the_argument_permission_keys_show_as_digests_everywhere():
    first = unique_work.apply_async(("x",), unique_key="customer-acme-key", unique_for=60)
    per_customer_key = "acme-secret-customer"
    get_broker().take_keyed_rate_slot(per_customer.registered_name, per_customer_key, 60_000)
    viewer = client_for("view_taskrecord")
    page = detail(viewer, first.id)
    assert "customer-acme-key" not in page and "<td>#" in page
    dashboard = viewer.get(DASHBOARD).content.decode()
    assert per_customer_key not in dashboard and per_customer.registered_name in dashboard
    assert per_customer_key in client_for(superuser=True).get(DASHBOARD).content.decode()


def test_a_filter_on_keys_is_refused_without_the_argument_permission():
    unique_work.apply_async(("x",), unique_key="guess-me", unique_for=60)
    url = reverse("admin:djtasks_taskrecord_changelist")
    viewer = client_for("view_taskrecord")
    assert viewer.get(url, {"keys__icontains": "guess"}).status_code == 400
    assert viewer.get(url, {"unique_lock": "0" * 64}).status_code == 400


def test_the_dashboard_shows_a_caps_holders_and_waiters():
    broker = get_broker()
    holder, waiter = capped.delay("holder"), capped.delay("waiter")
    publisher.flush()
    claims = broker.claim(["default"], "test", 30_000, limit=2)
    by_id = {claim.id: claim for claim in claims}
    assert broker.acquire_slot(capped.registered_name, None, 1, by_id[holder.id], 60_000) == 1
    assert broker.acquire_slot(capped.registered_name, None, 1, by_id[waiter.id], 60_000) == 0
    page = client_for(superuser=True).get(DASHBOARD).content.decode()
    assert "1 of 1 running, 1 waiting" in page and holder.id[:10] in page
    # The holder's lease ends (acked by hand): its slot no longer counts, its release wakes the waiter.
    assert broker.release_slot(capped.registered_name, None, by_id[holder.id]) == waiter.id
    assert "0 of 1 running, 0 waiting" in client_for(superuser=True).get(DASHBOARD).content.decode()


def test_the_dashboard_says_when_redis_is_unreachable(redis_server):
    client = client_for(superuser=True)
    redis_server.stop()
    try:
        page = client.get(DASHBOARD).content.decode()
    finally:
        redis_server.start()
    assert "Rate limits and concurrency caps by key" in page and "Redis is unreachable" in page
