"""A manual system's step, done by a person in a real Chromium: the officer reads the policy's
instructions on the System tasks page, confirms with a note and uploads the tool's export, and
the subject's ZIP then holds that file in the system's folder.
"""

from __future__ import annotations

import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from compliance.dsar.decisions import review_dsar
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import submit
from compliance.store.models import DsarRequest, ErasureTask, utcnow
from tests.browser.test_dashboard_in_chromium import launch, running_dashboard, settle, sign_in_as
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment
from tests.dashboard.conftest import OFFICER, queue  # noqa: F401

pytestmark = pytest.mark.browser
EXPORTED = b"email,list\nsubject@example.org,weekly\n"


def test_an_officer_confirms_a_manual_access_step_with_its_file_in_the_browser(
    queue: Deployment,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    queue.write_policy(DEMO_POLICY.replace("systems = []  ", 'systems = ["newsletter"]  ', 1))
    policy = queue.policy()
    assert policy.dsar_systems == ("newsletter",)
    with queue.session() as s:
        made = submit(
            s, policy, queue.app_engine, kind="access", subject_id="42",
            requested_by=SUPPORT_STAFF, execute=True,
        )  # fmt: skip
        reference = made.request.reference
        review_dsar(s, reference, "approve", reviewer=DPO, four_eyes=False, execute=True)
        first = process_dsar_requests(s, queue.datamap(), actor="worker", execute=True)
        assert first.waiting == [reference]
        task = s.scalars(select(ErasureTask).where(ErasureTask.system == "newsletter")).one()
        task_id = task.id
    upload = tmp_path / "subscriber.csv"
    upload.write_bytes(EXPORTED)

    with running_dashboard(queue) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            sign_in_as(page, queue, OFFICER)
            settle(page)
            page.get_by_test_id("stSidebarNav").get_by_text("System tasks", exact=True).click()
            expect(page.get_by_role("heading", name="System tasks")).to_be_visible()
            expect(page.get_by_text(f"Task {task_id}")).to_be_visible()
            expect(
                page.get_by_text("choose 'Export contact' and upload the CSV here")
            ).to_be_visible()
            settle(page)

            page.get_by_label("What did you do?", exact=True).fill(
                "Exported the contact from the tool"
            )
            page.locator("input[type=file]").first.set_input_files(str(upload))
            expect(page.get_by_text("subscriber.csv")).to_be_visible()
            settle(page)
            page.get_by_role("button", name="Confirm done").click()
            expect(page.get_by_text(f"Task {task_id} confirmed.")).to_be_visible()
        finally:
            browser.close()

    with queue.session() as s:
        done = s.get(ErasureTask, task_id)
        assert done is not None
        assert (done.status, done.done_by) == ("done", OFFICER)
        assert done.note == "Exported the contact from the tool"
        second = process_dsar_requests(
            s, queue.datamap(), actor="worker", execute=True, now=utcnow() + timedelta(minutes=2)
        )
        assert second.ready == [reference]
        path = s.scalars(
            select(DsarRequest.export_path).where(DsarRequest.reference == reference)
        ).one()
    with zipfile.ZipFile(path) as archive:
        assert archive.read("newsletter/subscriber.csv") == EXPORTED
        assert "app_database/users.csv" in archive.namelist()
