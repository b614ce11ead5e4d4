"""Acceptance: the tracker's console in a real browser, over `tracker serve`'s app and its jobs.

A support person of the customer signs in with a tracker account, follows a patient's job from
consent to ingestion (a real widget hand-off, export webhook, download and ingest run by the
tracker's job queue against the fake platform), reviews failures by reason, health system and
step, the consent log and the notifications, at a desktop's and a phone's width. Every page
passes axe-core with no serious or critical violation. Screenshots land in
test-artifacts/e2e/tracker-console-<test>-<nn>-<step>.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PHONE, PLAYWRIGHT_MISSING, Screenshot, new_context

pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)

from playwright.async_api import Browser, Locator, Page, expect

from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.runtime import TrackerRuntime
from tests.e2e.axe_support import axe_source, check_accessibility
from tests.e2e.doc_images import doc_image
from tests.integration import conftest as platform_fixtures
from tests.integration.console.support import PASSWORD
from tests.integration.tracker import conftest as tracker_fixtures
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson
from tests.integration.tracker.test_console import add_account, failed_jobs

postgres = platform_fixtures.postgres
database_url = platform_fixtures.database_url
platform = tracker_fixtures.platform
tracker_settings = tracker_fixtures.tracker_settings
tracker = tracker_fixtures.tracker
receiver = tracker_fixtures.receiver
axe_source = axe_source  # the session fixture, re-exported for this module


@pytest.fixture
def screenshot_prefix() -> str:
    return "tracker-console-"


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Console pages").get_by_role("link", name=name)


async def sign_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base_url}/console/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_support_follows_a_patient_and_reviews_failures(
    page: Page,
    browser: Browser,
    screenshot: Screenshot,
    axe_source: str,
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
) -> None:
    await add_account(tracker, "support@customer.example")
    connection_id = platform.add_connection()
    assert (
        forward(receiver, widget_complete(connection_id, external_id="user-42")).status_code == 202
    )
    await tracker_fixtures.drain(tracker)
    data = platform.complete(
        platform.task_for(connection_id).task_id, to_ndjson(patient_record("p1", observations=5))
    )
    sent = platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    assert sent.status_code == 200, sent.text
    await tracker_fixtures.drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED
    failed = await failed_jobs(tracker)

    await sign_in(page, receiver.url, "wrong@customer.example", "not the password")
    await expect(page.get_by_role("alert")).to_contain_text("do not match")
    await check_accessibility(page, axe_source, "login")
    await screenshot(page, "login")
    await sign_in(page, receiver.url, "support@customer.example")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.locator(".card").filter(has_text="failed")).to_contain_text("3")
    await expect(page.get_by_role("row", name="scope_patient_missing")).to_contain_text("2")
    await check_accessibility(page, axe_source, "overview")
    await screenshot(page, "overview")

    # The patient's job: every stage from consent to notification has its time.
    await nav(page, "Jobs").click()
    await page.get_by_label("Patient (external id)").fill("user-42")
    await page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text=job.job_id)
    await expect(row).to_contain_text("ingested")
    await expect(page.get_by_role("row").filter(has_text=failed[0])).to_have_count(0)
    await check_accessibility(page, axe_source, "jobs")
    await screenshot(page, "jobs")
    await row.get_by_role("link", name=job.job_id).click()
    await expect(page.get_by_role("heading", name=f"Job {job.job_id}")).to_be_visible()
    await expect(page.locator("#job-state")).to_have_text("ingested")
    timeline = page.locator("ol.timeline li")
    await expect(timeline).to_have_count(6)
    await expect(page.locator("ol.timeline li.todo")).to_have_count(0)
    await expect(page.get_by_role("row").filter(has_text="widget.complete")).to_contain_text(
        connection_id
    )
    await check_accessibility(page, axe_source, "job")
    await screenshot(page, "job")
    await doc_image(page, "tracker-console-job")

    # Failures by reason, health system and step, down to one failed job.
    await nav(page, "Failures").click()
    group = page.get_by_role("row").filter(has_text="attempts_exhausted")
    await expect(group).to_contain_text("brand-summit")
    await expect(group).to_contain_text("download")
    await check_accessibility(page, axe_source, "failures")
    await screenshot(page, "failures")
    await group.get_by_role("link").first.click()
    await expect(page.locator("#job-failure")).to_have_text("attempts_exhausted")

    await nav(page, "Consent log").click()
    entries = page.get_by_role("row").filter(has_text=connection_id)
    await expect(entries).to_have_count(2)  # the widget hand-off, then confirmed by the API
    await expect(entries.first).to_contain_text("confirmed")
    await check_accessibility(page, axe_source, "consents")
    await screenshot(page, "consents")

    await nav(page, "Notifications").click()
    await expect(page.get_by_role("row").filter(has_text=failed[2])).to_contain_text("email")
    await expect(page.get_by_role("row").filter(has_text=job.job_id)).to_contain_text("sent")
    await check_accessibility(page, axe_source, "notifications")
    await screenshot(page, "notifications")

    # The same pages at a phone's width: tables scroll in their box, the page does not.
    phone = await new_context(browser, PHONE)
    try:
        small = await phone.new_page()
        await sign_in(small, receiver.url, "support@customer.example")
        await expect(small.get_by_role("heading", name="Overview")).to_be_visible()
        for path in (
            "/console/",
            "/console/jobs",
            f"/console/jobs/{job.job_id}",
            "/console/consents",
        ):
            await small.goto(f"{receiver.url}{path}")
            width = await small.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], path
            await check_accessibility(small, axe_source, f"phone {path}")
        await screenshot(small, "phone-jobs")
    finally:
        await phone.close()
