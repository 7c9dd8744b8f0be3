"""The admin in a real browser: Playwright drives Debian's chromium against the live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from djtasks.models import TaskRecord
from djtasks.transport.broker import get_broker
from tests.support.waiting import wait_for
from tests.testapp.tasks import add, fail, progressing, tracked_sleep

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The admin guide's pictures: rewritten only when asked (DJTASKS_SCREENSHOTS=1), so a plain test
# run leaves the tracked files alone; the pages are captured either way.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WRITE_SCREENSHOTS = os.environ.get("DJTASKS_SCREENSHOTS") == "1"


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: bin/test installs Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread; the ORM calls here stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(browser, live_server, *, dark=False):
    context = browser.new_context(viewport={"width": 1680, "height": 900}, color_scheme="dark" if dark else "light")
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def shot(page, name):
    if not WRITE_SCREENSHOTS:
        assert page.screenshot(full_page=True)
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_an_operator_filters_inspects_retries_revokes_and_watches_the_dashboard(browser, live_server, worker):
    User.objects.create_superuser("root", "root@example.com", "pw")
    worker("-c", "2")
    done = [add.delay(i, i) for i in range(6)]
    failed = fail.apply_async(kwargs={"message": "card declined"})
    progressed = progressing.delay(4)
    slow = tracked_sleep.delay(60)
    delayed = add.apply_async((40, 2), countdown=3600)
    add.apply_async((1, 1), queue="reports")  # no worker consumes "reports"
    assert wait_for(
        lambda: (
            TaskRecord.objects.filter(
                pk__in=[r.id for r in [*done, failed, progressed]], state__in=["SUCCESS", "FAILURE"]
            ).count()
            == 8
        )
    )
    assert wait_for(lambda: TaskRecord.objects.filter(pk=slow.id, state="STARTED").exists())
    assert wait_for(lambda: bool(get_broker().workers()))

    page = log_in(browser, live_server)
    page.locator('#content-main a[href="/admin/djtasks/taskrecord/"]').first.click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 11
    page.click("#changelist-filter >> text=Failure")
    page.wait_for_url("**state__exact=FAILURE**")
    assert page.locator("#result_list tbody tr").count() == 1
    page.goto(f"{live_server.url}/admin/djtasks/taskrecord/?task_name=tests.testapp.tasks.add")
    assert page.locator("#result_list tbody tr").count() == 8
    page.goto(f"{live_server.url}/admin/djtasks/taskrecord/")
    shot(page, "task-list.png")

    page.click(f'#result_list a[href*="{failed.id}"]')
    page.wait_for_selector(".djtasks-timeline")
    assert "card declined" in page.content() and "ValueError" in page.content()
    shot(page, "task-detail.png")

    page.click("#djtasks-retry")
    page.wait_for_selector(".messagelist .success")
    assert f"Task {failed.id} retried as" in page.inner_text(".messagelist")
    copy = TaskRecord.objects.get(parent_id=failed.id)
    assert page.url.endswith(f"/admin/djtasks/taskrecord/{copy.id}/change/")
    assert wait_for(lambda: TaskRecord.objects.get(pk=copy.id).state == "FAILURE"), "the worker ran the retry"
    assert TaskRecord.objects.get(pk=copy.id).kwargs == {"message": "card declined"}

    page.goto(f"{live_server.url}/admin/djtasks/taskrecord/{delayed.id}/change/")
    page.click("#djtasks-revoke")
    page.wait_for_selector(".messagelist .success")
    assert TaskRecord.objects.get(pk=delayed.id).state == "REVOKED"
    assert page.locator("#djtasks-revoke").count() == 0

    # A POST without the CSRF token is refused, even for a superuser with a session.
    refused = page.request.post(f"{live_server.url}/admin/djtasks/taskrecord/{failed.id}/retry/")
    assert refused.status == 403 and TaskRecord.objects.filter(parent_id=failed.id).count() == 1

    page.goto(f"{live_server.url}/admin/")
    page.locator('#content-main a[href="/admin/djtasks/dashboard/"]').first.click()
    page.wait_for_selector("#djtasks-workers")
    workers = page.inner_text("#djtasks-workers")
    assert next(iter(get_broker().workers())) in workers and "No worker is online" not in workers
    assert "tests.testapp.tasks.add" in page.inner_text("#djtasks-per-task")
    assert slow.id[:8] in workers, "the worker's running task is listed"
    assert "reports" in page.inner_text("#djtasks-queues")
    first_update = page.inner_text(".djtasks-updated time")
    page.wait_for_function(
        "t => document.querySelector('.djtasks-updated time').textContent !== t", arg=first_update, timeout=30_000
    )
    shot(page, "dashboard.png")

    dark = log_in(browser, live_server, dark=True)
    dark.goto(f"{live_server.url}/admin/djtasks/dashboard/")
    dark.wait_for_selector("#djtasks-workers")
    shot(dark, "dashboard-dark.png")
    dark.goto(f"{live_server.url}/admin/djtasks/taskrecord/{progressed.id}/change/")
    dark.wait_for_selector(".djtasks-progress")
    shot(dark, "task-detail-dark.png")
