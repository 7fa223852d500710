"""Issue 23 in a real Chromium, on the demo: an approved access request reaches its subject
through the demo's Outbox, by the jobs (``[dsar] auto_deliver = true``, as shipped) or by
support's *Send to subject* (``auto_deliver = false``).

The request is logged and approved with the jobs; the dashboard and the download page run
as Streamlit servers (the download page with README's command), and the subject's link and
code are read off the Outbox page, as a newcomer to the demo would.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from compliance.dsar import desk
from compliance.dsar.delivery import DOWNLOAD_URL_ENV
from tests.browser.test_dashboard_in_chromium import (
    launch,
    running_dashboard,
    settle,
    sign_in_as,
)
from tests.browser.test_request_desk_in_chromium import open_dsar_page, running_download_page
from tests.conftest import DEMO_POLICY, SHIPPED_POLICY, Deployment, ok
from tests.dashboard.conftest import OFFICER, SUPPORT, demo_picker_offered

pytestmark = pytest.mark.browser
SUBJECT_ID = "31"
#: The request's timeline once its subject downloaded it (the job's build has no "Export
#: started": that is support's *Export now*).
DELIVERED = [
    "Logged",
    "Approved",
    "Export built, ready to send",
    "Link and code sent to the subject",
    "Completed",
    "Subject downloaded the export",
]


def run_json(demo: Deployment, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A job's --json summary; the job must succeed."""
    result = demo.run("--json", *args, env=env)
    ok(result)
    return dict(json.loads(result.stdout))


def approved_access_request(demo: Deployment) -> str:
    """Support logs an access request with the jobs and the officer approves it."""
    logged = run_json(
        demo, "submit-dsar", "--kind", "access", "--subject-id", SUBJECT_ID, "--requested-by",
        SUPPORT, "--identity-method", "id_document", "--identity-check",
        "Passport shown at the service desk", "--execute",
    )  # fmt: skip
    reference = str(logged["reference"])
    ok(demo.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    return reference


def process_dsar_requests(demo: Deployment, download_url: str) -> dict[str, Any]:
    """The 15-minute cron's run, told where the download page is, as README says."""
    return run_json(
        demo, "process-dsar-requests", "--execute", env={DOWNLOAD_URL_ENV: download_url}
    )


def status(demo: Deployment, reference: str) -> tuple[str, list[str]]:
    with demo.session() as s:
        detail = desk.request_detail(s, demo.policy(), reference, roles={"support"})
    return detail.status, [event.label for event in detail.timeline]


def open_outbox(page: Any) -> None:
    from playwright.sync_api import expect

    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Outbox", exact=True).click()
    expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
    settle(page)


def choose(page: Any, box: str, option: str | re.Pattern[str]) -> None:
    """Pick an option of a select box. A box Playwright first scrolls to can take the click
    as focus only and stay closed (Open request does, below the table), so it is clicked
    again until its list is open, a few times at most."""
    from playwright.sync_api import expect

    combobox = page.get_by_role("combobox", name=box)
    for attempt in range(3):
        combobox.click()
        try:
            expect(combobox).to_have_attribute("aria-expanded", "true", timeout=2_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    page.get_by_role("option", name=option).click()
    settle(page)


def show_message(page: Any, subject: str) -> None:
    """Open one message of the Outbox by its subject."""
    choose(page, "Message", re.compile(re.escape(subject)))


def subject_downloads_from_the_outbox(
    browser: Any, page: Any, reference: str, download_url: str, folder: Path
) -> Path:
    """On the Outbox (``page``, signed in): the two emails; then, as the subject, the link from
    the first opened with the code from the second; returns the ZIP the browser saved."""
    from playwright.sync_api import expect

    open_outbox(page)
    page.get_by_role("combobox", name="Message").click()
    listed = page.get_by_role("option")
    expect(listed).to_have_count(2)  # the link and, in a separate email, the code
    assert sorted(re.sub(r"^.* · ", "", text) for text in listed.all_inner_texts()) == [
        f"Your download code ({reference})",
        f"Your personal data export ({reference})",
    ]
    page.keyboard.press("Escape")

    show_message(page, f"Your personal data export ({reference})")
    link = page.get_by_test_id("stCode").filter(has_text="token=").inner_text().strip()
    assert link.startswith(f"{download_url}/?token=") or link.startswith(f"{download_url}?token=")
    show_message(page, f"Your download code ({reference})")
    code_text = page.get_by_text(re.compile(r"Your download code is \d{6}")).inner_text()
    code = re.search(r"\d{6}", code_text).group(0)  # type: ignore[union-attr]

    subject = browser.new_page(viewport={"width": 1000, "height": 800}, accept_downloads=True)
    subject.goto(link)
    expect(subject.get_by_role("heading", name="Download your data")).to_be_visible()
    subject.get_by_label("The 6-digit code from our second email").fill(code)
    subject.get_by_role("button", name="Unlock").click()
    expect(subject.get_by_text("Your export is ready.")).to_be_visible()
    with subject.expect_download() as started:
        subject.get_by_role("button", name="Download your data (ZIP)").click()
    download = started.value
    saved = folder / download.suggested_filename
    download.save_as(saved)
    return saved


def assert_the_subjects_export(zip_path: Path, reference: str) -> None:
    assert zip_path.name == f"{reference}.zip"
    assert zipfile.is_zipfile(zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        assert {"data.json", "manifest.json"} <= set(archive.namelist())
        document = json.loads(archive.read("data.json"))
    assert document["request"]["reference"] == reference
    assert [str(user["id"]) for user in document["tables"]["users"]] == [SUBJECT_ID]


def test_the_jobs_build_and_deliver_an_approved_export_and_the_outbox_link_downloads_it(
    demo: Deployment, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    demo.write_policy(SHIPPED_POLICY)  # auto_deliver = true and the var/outbox folder
    reference = approved_access_request(demo)
    with running_download_page(demo) as download_url:
        result = process_dsar_requests(demo, download_url)
        assert (result["delivered"], result["ready"]) == ([reference], [])
        assert status(demo, reference)[0] == "completed"
        with running_dashboard(demo) as dashboard_url, sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(dashboard_url)
                if demo_picker_offered(demo):
                    expect(page.get_by_text("Demo mode: choose who you are")).to_be_visible()
                sign_in_as(page, demo, SUPPORT)
                zip_path = subject_downloads_from_the_outbox(
                    browser, page, reference, download_url, tmp_path
                )
            finally:
                browser.close()

    assert_the_subjects_export(zip_path, reference)
    assert status(demo, reference) == ("completed", DELIVERED)


def test_with_auto_deliver_off_support_sends_it_and_the_outbox_link_downloads_it(
    demo: Deployment, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert "auto_deliver = false" in DEMO_POLICY  # the deployment fixture's policy
    reference = approved_access_request(demo)
    with running_download_page(demo) as download_url:
        result = process_dsar_requests(demo, download_url)
        assert (result["delivered"], result["ready"]) == ([], [reference])
        assert status(demo, reference)[0] == "ready"
        dashboard = running_dashboard(demo, env={DOWNLOAD_URL_ENV: download_url})
        with dashboard as dashboard_url, sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(dashboard_url)
                sign_in_as(page, demo, SUPPORT)
                open_dsar_page(page)
                choose(page, "Open request", reference)
                expect(page.get_by_role("heading", name=reference)).to_be_visible()
                settle(page)
                page.get_by_role("button", name="Send to subject").click()
                expect(page.get_by_text(f"Emailed {reference}'s one-time link")).to_be_visible()
                zip_path = subject_downloads_from_the_outbox(
                    browser, page, reference, download_url, tmp_path
                )
            finally:
                browser.close()

    assert_the_subjects_export(zip_path, reference)
    assert status(demo, reference) == ("completed", DELIVERED)
