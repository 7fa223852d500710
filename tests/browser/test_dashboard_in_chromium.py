"""The dashboard in a real headless Chromium: sign in, accept a batch, see its new status.

Starts `streamlit run dashboard/app.py` on a free loopback port against a demo deployment
and drives Debian's chromium through Playwright. Saves a screenshot of each page into
docs/screenshots/ for the README.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Deployment
from tests.dashboard.conftest import MANAGER, OFFICER, pending_batch, queue  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen[str], attempts: int = 120) -> None:
    for _ in range(attempts):  # bounded: at most ~30 s
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited early: {server.stdout.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        server_wait(server, 0.25)
    raise AssertionError(f"streamlit did not answer at {url}")


def server_wait(server: subprocess.Popen[str], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=seconds)


@contextlib.contextmanager
def running_dashboard(
    deployment: Deployment, *, port: int | None = None, args: Sequence[str] = ()
) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on a free loopback port, stopped afterwards.

    ``args`` are extra Streamlit options (``--secrets.files …``); ``port`` a port chosen
    beforehand, for a redirect URI that must name it."""
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium (apt install chromium)"
        )
    port = port or free_port()
    env = {k: v for k, v in {**os.environ, **deployment.env}.items() if v is not None}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server_wait(server, 10)
        if server.poll() is None:
            server.kill()


@pytest.fixture
def dashboard_url(queue: Deployment) -> Iterator[str]:  # noqa: F811
    with running_dashboard(queue) as url:
        yield url


def settle(page: Any) -> None:
    """Wait until Streamlit has finished the run and every table has painted."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=20_000,
    )
    page.wait_for_timeout(1_000)


def test_an_officer_accepts_a_batch_in_the_browser(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    batch_id = pending_batch(queue, "inactive_accounts")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.goto(dashboard_url)
            # Sign in through the demo picker.
            expect(page.get_by_text("Demo mode: choose who you are")).to_be_visible()
            picker = page.get_by_role("combobox", name="Signed in as (demo mode)")
            picker.click()
            page.get_by_role("option", name=OFFICER).click()
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            expect(page.get_by_text(f"Batch {batch_id} · inactive_accounts")).to_be_visible()
            expect(page.get_by_text("Impact preview")).to_be_visible()
            settle(page)
            page.screenshot(path=SCREENSHOTS / "deletion_batches.png", full_page=True)

            page.get_by_role("button", name="Accept batch…").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text(f"Accept batch {batch_id}?")).to_be_visible()
            dialog.get_by_role("button", name="Accept and schedule erasure").click()
            expect(page.get_by_text(f"Batch {batch_id} accepted")).to_be_visible()
            expect(page.get_by_text(f"Accepted by {OFFICER} at")).to_be_visible()

            for title, name in [
                ("DSAR requests", "dsar_requests"),
                ("Progress", "progress"),
                ("Audit log", "audit_log"),
            ]:
                page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                expect(page.get_by_role("heading", name=title)).to_be_visible()
                settle(page)
                page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        finally:
            browser.close()

    with queue.session() as session:
        from compliance.deletion.batches import get_batch

        batch = get_batch(session, batch_id)
        assert (batch.reviewed_status, batch.reviewed_by) == ("accepted", OFFICER)
