"""Sign-in in a real headless Chromium: the proxy's header counts only with its secret.

The browser sends the headers itself (Playwright's extra HTTP headers reach Streamlit's
websocket handshake), as an attacker who reaches the dashboard's port directly would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.test_dashboard_in_chromium import CHROMIUM, running_dashboard
from tests.conftest import DEMO_POLICY, Deployment
from tests.dashboard.conftest import MANAGER, OFFICER, queue  # noqa: F401

pytestmark = pytest.mark.browser
SECRET = "s3cret-shared-with-the-proxy-only-0123456789"
SECRET_HEADER = "X-Privacy-Desk-Proxy-Secret"


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # two shared cores: a first run can take a while
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, url: str, headers: dict[str, str]) -> Any:
    page = browser.new_context(extra_http_headers=headers).new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    return page


def test_behind_the_proxy_the_header_with_its_secret_names_the_person_and_a_forged_one_nobody(
    queue: Deployment,  # noqa: F811
    chromium: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    queue.write_policy(DEMO_POLICY.replace("demo_mode = true", "demo_mode = false"))
    monkeypatch.setenv("COMPLIANCE_PROXY_SECRET", SECRET)
    with running_dashboard(queue) as url:
        # What the proxy sends: the person, and the secret it shares with the dashboard.
        manager = open_page(chromium, url, {"X-Forwarded-Email": MANAGER, SECRET_HEADER: SECRET})
        expect(manager.get_by_role("heading", name="Progress")).to_be_visible()
        expect(manager.get_by_text("ceo@", exact=False).first).to_be_visible()
        nav = manager.get_by_test_id("stSidebarNav")
        expect(nav.get_by_text("Deletion batches", exact=True)).to_have_count(0)
        expect(manager.get_by_text("Signed in as (demo mode)")).to_have_count(0)

        stranger = open_page(
            chromium, url, {"X-Forwarded-Email": "someone@elsewhere.org", SECRET_HEADER: SECRET}
        )
        expect(stranger.get_by_text("No access", exact=False).first).to_be_visible()

        # What an attacker on the port sends: the officer's email, without or with a guess.
        for forged in (
            {"X-Forwarded-Email": OFFICER},
            {"X-Forwarded-Email": OFFICER, SECRET_HEADER: "guessed"},
            {"X-Forwarded-Email": OFFICER, SECRET_HEADER: SECRET[:-1]},
        ):
            page = open_page(chromium, url, forged)
            expect(page.get_by_text("Nobody is signed in", exact=False)).to_be_visible()
            expect(page.get_by_role("heading", name="Deletion batches")).to_have_count(0)
            expect(page.get_by_text(OFFICER)).to_have_count(0)
            expect(page.get_by_test_id("stMain").get_by_role("button")).to_have_count(0)

        anonymous = open_page(chromium, url, {})
        expect(anonymous.get_by_text("Nobody is signed in", exact=False)).to_be_visible()


def test_without_a_proxy_secret_configured_the_header_is_never_believed(
    queue: Deployment,  # noqa: F811
    chromium: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    queue.write_policy(DEMO_POLICY.replace("demo_mode = true", "demo_mode = false"))
    monkeypatch.delenv("COMPLIANCE_PROXY_SECRET", raising=False)
    with running_dashboard(queue) as url:
        page = open_page(chromium, url, {"X-Forwarded-Email": OFFICER, SECRET_HEADER: SECRET})
        expect(page.get_by_text("Nobody is signed in", exact=False)).to_be_visible()
        expect(page.get_by_text(OFFICER)).to_have_count(0)
