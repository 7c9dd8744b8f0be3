"""The admin in a real browser: Playwright drives Debian's chromium against the live server."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from djtasks.models import DeadLetter, TaskRecord
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
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
# The docs' pictures (the screenshots the docs pages show, or docs/ holds already) are rewritten only
# when asked (DJTASKS_SCREENSHOTS=1), so a plain run leaves the tracked files alone; every other capture
# (and every one without it) goes to a temporary folder: a run adds or changes no file of the repository.
WRITE_SCREENSHOTS = os.environ.get("DJTASKS_SCREENSHOTS") == "1"
DOCUMENTED = {
    name
    for page in (ROOT / "docs").rglob("*.md")
    for name in re.findall(r"screenshots/([\w.-]+\.png)", page.read_text())
}
CHECKS = Path(tempfile.gettempdir()) / f"djtasks-screenshots-{os.environ.get('DJTASKS_TEST_RUN', 'run')}"


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
    documented = name in DOCUMENTED or (SCREENSHOTS / name).exists()
    folder = SCREENSHOTS if WRITE_SCREENSHOTS and documented else CHECKS
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


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


OVERFLOW = "document.scrollingElement.scrollWidth <= window.innerWidth"
COLUMN_RIGHT = """name => {
    const headers = [...document.querySelectorAll('#result_list thead th')];
    const th = headers.find(t => t.textContent.trim().toLowerCase() === name);
    return th ? th.getBoundingClientRect().right : null;
}"""
WIDTHS = "() => [...document.querySelectorAll('#result_list thead th')].map(t => [t.textContent.trim(), t.offsetWidth])"


def sized(browser, live_server, width, height=900):
    page = log_in(browser, live_server)
    page.set_viewport_size({"width": width, "height": height})
    return page


def test_the_tables_fit_at_1280_and_1440_px_and_scroll_in_place_at_420(browser, live_server, worker):
    User.objects.create_superuser("root", "root@example.com", "pw")
    process = worker("-n", "a-rather-long-worker-name-for-the-columns@%h", "-c", "1")
    for _ in range(3):
        progressing.delay(3).get(timeout=30)
    fail.apply_async(kwargs={"message": "a long message " * 20})
    assert wait_for(lambda: process.name in get_broker().workers(), timeout=30)
    letter = DeadLetter.objects.create(
        task_id="a-task-id-that-goes-on-and-on-" * 3,
        task_name="tests.testapp.tasks.a_task_with_a_very_long_registered_name",
        queue="default",
        reason="arguments do not match: " + "a very long reason that must wrap rather than be cut off, " * 4,
    )
    for width in (1280, 1440):
        page = sized(browser, live_server, width)
        page.goto(f"{live_server.url}/admin/djtasks/taskrecord/")
        page.wait_for_selector("#result_list")
        shot(page, f"task-list-{width}.png")
        assert page.evaluate(OVERFLOW), f"the task list overflows at {width} px"
        for column in ("started at", "finished at", "run time", "attempts"):
            right = page.evaluate(COLUMN_RIGHT, column)
            assert right is not None and right <= width, (
                f"{column!r} ends at {right} px of {width}: {page.evaluate(WIDTHS)}"
            )
        page.goto(f"{live_server.url}/admin/djtasks/dashboard/")
        page.wait_for_selector("#djtasks-workers")
        assert page.evaluate(OVERFLOW), f"the dashboard overflows at {width} px"
    narrow = sized(browser, live_server, 420, 900)
    for path, name in (
        ("dashboard/", "dashboard-420.png"),
        ("taskrecord/", "task-list-420.png"),
        ("fleet/", "fleet-420.png"),
    ):
        narrow.goto(f"{live_server.url}/admin/djtasks/{path}")
        narrow.wait_for_load_state("load")
        assert narrow.evaluate(OVERFLOW), f"{path} overflows at 420 px"
        shot(narrow, name)
    wide = sized(browser, live_server, 1280)
    wide.goto(f"{live_server.url}/admin/djtasks/deadletter/{letter.pk}/change/")
    title = wide.locator("#content h2").first
    box = title.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1280 and wide.evaluate(OVERFLOW)
    assert title.inner_text() == f"{letter.task_name}[{letter.task_id}]", "the title is whole, not cut mid-reason"
    assert "rather than be cut off" in wide.inner_text("#content"), "the dead letter's reason is all there"
    shot(wide, "dead-letter.png")


def test_an_operator_pauses_a_queue_purges_it_changes_a_limit_and_grows_a_worker(browser, live_server, worker):
    User.objects.create_superuser("root", "root@example.com", "pw")
    process = worker("-n", "browser@%h", "-c", "1", "-Q", "default,images")
    assert wait_for(lambda: process.name in get_broker().workers(), timeout=30)
    page = log_in(browser, live_server)
    page.goto(f"{live_server.url}/admin/")
    page.locator('#content-main a[href="/admin/djtasks/fleet/"]').first.click()
    page.wait_for_selector("#djtasks-fleet-workers")
    row = page.locator(f'tr[data-worker="{process.name}"]')
    row.locator('button[name="grow"]').click()
    page.wait_for_selector(".messagelist .success")
    assert "pool grown by 1 to 2" in page.inner_text(".messagelist")
    shot(page, "fleet-workers.png")

    page.click("nav.djtasks-tabs >> text=Queues")
    page.wait_for_selector("#djtasks-fleet-queues")
    page.locator('tr[data-queue="images"] button[name="pause"]').click()
    page.wait_for_selector(".messagelist .success")
    held = [add.apply_async((i, i), queue="images") for i in range(4)]
    page.goto(f"{live_server.url}/admin/djtasks/fleet/queues/")
    assert "Paused" in page.inner_text('tr[data-queue="images"]')
    page.locator('tr[data-queue="images"] button[name="purge"]').click()
    page.wait_for_selector("#djtasks-purge-confirm")
    assert "4 waiting task(s) of images will be revoked" in page.inner_text("#djtasks-purge-confirm")
    shot(page, "fleet-purge.png")
    page.click("#djtasks-purge-yes")
    page.wait_for_selector(".messagelist .success")
    assert {TaskRecord.objects.get(pk=r.id).state for r in held} == {"REVOKED"}
    page.locator('tr[data-queue="images"] button[name="resume"]').click()
    page.wait_for_selector(".messagelist .success")

    page.click("nav.djtasks-tabs >> text=Task limits")
    limits = page.locator('tr[data-task="tests.testapp.tasks.add"]')
    limits.locator('input[name="rate"]').fill("10/m")
    limits.locator('button[name="set_rate"]').click()
    page.wait_for_selector(".messagelist .success")
    assert "runtime override" in page.inner_text('tr[data-task="tests.testapp.tasks.add"]')
    shot(page, "fleet-limits.png")
    entries = list(LogEntry.objects.order_by("action_time").values_list("change_message", flat=True))
    assert [e.split(":")[0] for e in entries] == ["pool_grow", "pause", "purge", "resume", "rate_limit"]
