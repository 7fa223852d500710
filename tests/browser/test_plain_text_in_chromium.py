"""Text people typed is shown as itself in a real browser: no link to click, no image fetched.

A rejection reason written as markdown (a phishing link and a tracking pixel) must reach
the officer's screen as the characters typed, not as an <a> or an <img>.
"""

from __future__ import annotations

import pytest

from compliance.deletion.review import review_batch
from tests.browser.test_dashboard_in_chromium import (
    CHROMIUM,
    running_dashboard,
    settle,
    sign_in_as,
)
from tests.conftest import DPO, Deployment
from tests.dashboard.conftest import OFFICER, pending_batch, queue  # noqa: F401

pytestmark = pytest.mark.browser
REASON = (
    "[Re-verify your SSO](http://127.0.0.1:9/phish) ![t](http://127.0.0.1:9/pixel.png) "
    "<b>bold</b> **not bold** www.example.net"
)


def test_a_markdown_rejection_reason_renders_literally(
    queue: Deployment,  # noqa: F811
) -> None:
    from playwright.sync_api import expect, sync_playwright

    batch_id = pending_batch(queue)
    with queue.session() as s:
        review_batch(s, batch_id, "reject", reviewer=DPO, reason=REASON, execute=True)
    expect.set_options(timeout=30_000)
    with running_dashboard(queue) as url, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            fetched: list[str] = []
            page.on("request", lambda r: fetched.append(r.url) if ":9/" in r.url else None)
            page.goto(url)
            sign_in_as(page, queue, OFFICER)
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            page.get_by_role("combobox", name="Status").click()
            page.get_by_role("option", name="rejected", exact=True).click()
            expect(page.get_by_text(f"Batch {batch_id} · closed_accounts")).to_be_visible()
            settle(page)

            expect(page.get_by_text("Rejected by dpo@", exact=False)).to_be_visible()
            shown = page.get_by_test_id("stText").filter(has_text="Re-verify")
            expect(shown).to_have_text(REASON)  # exactly the characters typed
            main = page.get_by_test_id("stMain")
            expect(main.locator("a[href*='127.0.0.1:9'], a[href*='example.net']")).to_have_count(0)
            expect(main.locator("img[src*='127.0.0.1:9']")).to_have_count(0)
            expect(main.locator("b, strong").filter(has_text="bold")).to_have_count(0)
            assert fetched == []
        finally:
            browser.close()
