"""The officer's desk when work piles up, in a real Chromium: over 300 manual tasks confirmed
in one bulk action (each audited on its own), and four eyes hiding Approve from the officer
who logged a request themselves while another officer is offered it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from compliance.dsar.requests import submit
from compliance.roles import identify
from compliance.store.models import AuditEvent, ErasureTask
from tests.browser.test_dashboard_in_chromium import launch, running_dashboard, settle, tab
from tests.conftest import Deployment
from tests.dashboard.conftest import OFFICER
from tests.dashboard.test_tasks_bulk import queue  # noqa: F401  (over 300 manual tasks)
from tests.systems.test_bulk_task_confirm import newsletter_backlog

pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: A second compliance officer, added to the demo's [roles]: four eyes needs two.
OTHER_OFFICER = "privacy.officer@example.com"
NOTE = "Removed from the newsletter tool"


def test_three_hundred_tasks_in_one_bulk_action_and_four_eyes_hides_approve(
    queue: Deployment,  # noqa: F811
) -> None:
    from playwright.sync_api import expect, sync_playwright

    total = newsletter_backlog(queue)
    assert total >= 300
    text = queue.policy_path.read_text()
    queue.write_policy(
        text.replace('compliance_officer = ["dpo@example.com"]',
                     f'compliance_officer = ["dpo@example.com", "{OTHER_OFFICER}"]', 1)
        .replace("# [review]\n# four_eyes = true", "[review]\nfour_eyes = true", 1)
    )  # fmt: skip
    policy = queue.policy()
    assert OTHER_OFFICER in policy.roles["compliance_officer"] and policy.review.four_eyes
    with queue.session() as s:
        own = submit(
            s, policy, queue.app_engine, kind="access", subject_id="42",
            requested_by=identify(policy, OFFICER), identity_method="id_document",
            identity_check="passport seen", execute=True,
        ).request.reference  # fmt: skip

    with running_dashboard(queue) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = tab(browser, queue, OFFICER)
            page.goto(f"{url}/system_tasks?as={OFFICER}")
            expect(page.get_by_role("heading", name="System tasks")).to_be_visible()
            expect(page.get_by_text(f"Manual tasks waiting ({total})")).to_be_visible()
            settle(page)
            page.get_by_text("Confirm several at once").click()
            page.get_by_text(f"All {total} task(s) matching the filter").click()
            settle(page)
            page.get_by_label("What did you do? (one note for every task)").fill(NOTE)
            page.keyboard.press("Enter")
            settle(page)
            page.get_by_role("button", name=f"Confirm {total} task(s) done").click()
            expect(
                page.get_by_text(f"{total} task(s) confirmed, each audited on its own.")
            ).to_be_visible(timeout=120_000)
            expect(page.get_by_text("Manual tasks waiting (0)")).to_be_visible()

            # Four eyes: the author of a request is not offered Approve; another officer is.
            for person, offered in ((OFFICER, False), (OTHER_OFFICER, True)):
                page = tab(browser, queue, person)
                page.goto(f"{url}/dsar_requests?reference={own}&as={person}")
                expect(page.get_by_role("heading", name="DSAR requests")).to_be_visible()
                settle(page)
                # The request is open in its detail (Reject is offered to any officer) ...
                expect(page.get_by_role("button", name="Reject…")).to_be_visible()
                # ... and Approve only to the officer who did not log it.
                expect(page.get_by_role("button", name="Approve…")).to_have_count(int(offered))
        finally:
            browser.close()

    with queue.session() as s:
        done = s.scalar(
            select(func.count()).where(
                ErasureTask.system == "newsletter",
                ErasureTask.done_by == OFFICER,
            )
        )
        events = s.scalar(
            select(func.count()).where(
                AuditEvent.action == "task.done", AuditEvent.actor == OFFICER
            )
        )
    assert done == events == total
