"""OpenID Connect sign-in end to end: real Chromium, Streamlit's st.login, a real provider.

The provider is oidc-provider-mock, a working OpenID Connect server (discovery, JWKS,
authorization code flow, ID tokens, end-session) served on loopback in this process. The
dashboard reads its [auth] section from a secrets file written to the test's temporary
folder and handed to Streamlit with --secrets.files: no secret ever lands in the checkout.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_dashboard_in_chromium import CHROMIUM, free_port, running_dashboard
from tests.conftest import DEMO_POLICY, Deployment
from tests.dashboard.conftest import OFFICER, queue  # noqa: F401

pytestmark = pytest.mark.browser
PROXY_SECRET = "s3cret-shared-with-the-proxy-only-0123456789"


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An OpenID Connect provider on a free loopback port; yields its issuer URL."""
    import werkzeug.serving
    from oidc_provider_mock import app

    # Plain http on loopback only: the provider and Streamlit's client both allow it then.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, app(require_client_registration=False), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def write_secrets(directory: Path, issuer: str, port: int) -> Path:
    """A secrets.toml with [auth] for this run only, outside the repository."""
    path = directory / "secrets.toml"
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "privacy-desk"\n'
        f'client_secret = "{secrets.token_urlsafe(24)}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
    )
    return path


def sign_in(page: Any, url: str, email: str) -> None:
    """Through the dashboard's Sign in button and the provider's authorization form."""
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_placeholder("sub").fill(email)  # the provider's user: its email claim
    page.get_by_role("button", name="Authorize").click()


def test_people_sign_in_and_out_through_the_identity_provider(
    queue: Deployment,  # noqa: F811
    provider: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    queue.write_policy(DEMO_POLICY.replace("demo_mode = true", "demo_mode = false"))
    # A proxy secret is configured too: with OIDC on, a proxy header still counts for nothing.
    monkeypatch.setenv("COMPLIANCE_PROXY_SECRET", PROXY_SECRET)
    port = free_port()
    secrets_file = write_secrets(tmp_path, provider, port)
    with (
        running_dashboard(queue, port=port, args=["--secrets.files", str(secrets_file)]) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            # Nobody signed in: only the sign-in page, no picker, no data.
            page = browser.new_context().new_page()
            page.goto(url)
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            expect(page.get_by_text("Signed in as (demo mode)")).to_have_count(0)
            expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)

            # The officer signs in at the provider and lands on their first page.
            sign_in(page, url, OFFICER)
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            expect(
                page.get_by_test_id("stSidebar").get_by_text("dpo@", exact=False)
            ).to_be_visible()
            expect(page.get_by_text("Compliance officer", exact=False).first).to_be_visible()

            # Logging out goes through the provider's end-session page and back, signed out.
            page.get_by_role("button", name="Log out").click()
            expect(page.get_by_role("heading", name="End Session")).to_be_visible()
            page.get_by_role("button", name="End session").click()
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            expect(page.get_by_role("heading", name="Deletion batches")).to_have_count(0)
            page.goto(url)  # a fresh visit: the identity cookie is gone
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()

            # Someone the provider knows but [roles] does not: signed in, and no access.
            # Their browser also sends the officer's email with the proxy's own secret.
            forged = {"X-Forwarded-Email": OFFICER, "X-Privacy-Desk-Proxy-Secret": PROXY_SECRET}
            visitor = browser.new_context(extra_http_headers=forged).new_page()
            sign_in(visitor, url, "visitor@partner.org")
            expect(visitor.get_by_role("heading", name="No access")).to_be_visible()
            expect(visitor.get_by_text("visitor@", exact=False).first).to_be_visible()
            expect(visitor.get_by_role("heading", name="Deletion batches")).to_have_count(0)
            expect(visitor.get_by_role("button", name="Log out")).to_be_visible()
        finally:
            browser.close()
