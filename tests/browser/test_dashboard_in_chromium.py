"""The dashboard in a real headless Chromium: sign in, accept a batch, see its new status.

Starts `streamlit run dashboard/app.py` on a free loopback port against a demo deployment
and drives Debian's chromium through Playwright. Screenshots go to a temporary folder;
with PRIVACY_DESK_SCREENSHOTS=1 they refresh docs/screenshots/ for the README instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Deployment
from tests.dashboard.conftest import MANAGER, OFFICER, SUPPORT, pending_batch, queue  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
# Where browser tests save screenshots: docs/ only when asked (PRIVACY_DESK_SCREENSHOTS=1),
# else a temporary folder, so a test run never changes the docs.
SCREENSHOTS = (
    DOCS_SCREENSHOTS
    if os.environ.get("PRIVACY_DESK_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "privacy-desk-screenshots"
)
pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1400, "height": 900}
# Per demo role: the pages the README's table lists for it, by their URL path, and the
# demo's Outbox.
ROLE_PAGES = {
    OFFICER: [
        "deletion_batches",
        "dsar_requests",
        "system_tasks",
        "legal_holds",
        "progress",
        "audit_log",
        "jobs",
        "outbox",
    ],
    SUPPORT: ["dsar_requests", "outbox"],
    MANAGER: ["progress", "audit_log", "jobs", "outbox"],
}
# A table whose scroll width exceeds its visible width hides columns off to the right.
CLIPPED_TABLES = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .map((frame, index) => {
        const scroller = frame.querySelector('.dvn-scroller');
        return scroller && scroller.scrollWidth > scroller.clientWidth + 1
            ? {index, scroll: scroller.scrollWidth, client: scroller.clientWidth} : null;
    }).filter(Boolean)"""


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """docs/screenshots/ only when asked (PRIVACY_DESK_SCREENSHOTS=1): tests change no docs."""
    if os.environ.get("PRIVACY_DESK_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path


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
    deployment: Deployment,
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on a free loopback port, stopped afterwards.

    ``args`` are extra Streamlit options (``--secrets.files …``); ``port`` a port chosen
    beforehand, for a redirect URI that must name it; ``env`` more environment variables
    (``COMPLIANCE_DOWNLOAD_URL``)."""
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium (apt install chromium)"
        )
    port = port or free_port()
    env = server_env(deployment, env)
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


def server_env(deployment: Deployment, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the deployment's settings (and ``extra``) on top."""
    merged = {**os.environ, **deployment.env, **(extra or {})}
    return {k: v for k, v in merged.items() if v is not None}


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


def rendered(email: str) -> str:
    """An email as the page renders it: plain text, a word joiner after @ so it never links."""
    return email.replace("@", "@\u2060")


def launch(p: Any) -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # two shared CPU cores: a first run can take a while
    return p.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def test_an_officer_accepts_a_batch_in_the_browser(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
    screenshots: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    batch_id = pending_batch(queue, "inactive_accounts")
    with sync_playwright() as p:
        browser = launch(p)
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
            page.screenshot(path=screenshots / "deletion_batches.png", full_page=True)

            page.get_by_role("button", name="Accept batch…").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text(f"Accept batch {batch_id}?")).to_be_visible()
            dialog.get_by_role("button", name="Accept and schedule erasure").click()
            expect(page.get_by_text(f"Batch {batch_id} accepted")).to_be_visible()
            expect(page.get_by_text(f"Accepted by {rendered(OFFICER)} at")).to_be_visible()
            # The selector keeps the batch open and claims no stale status for it.
            selector = page.get_by_role("combobox", name="Open a batch")
            expect(selector).to_have_value(re.compile(f"^#{batch_id} · inactive_accounts · "))
            expect(selector).not_to_have_value(re.compile("pending"))
            # Streamlit's developer toolbar (Deploy, rerun) is not offered to the desk's users.
            expect(page.get_by_role("button", name="Deploy")).to_have_count(0)

            for title, name in [
                ("DSAR requests", "dsar_requests"),
                ("Progress", "progress"),
                ("Audit log", "audit_log"),
            ]:
                page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                expect(page.get_by_role("heading", name=title)).to_be_visible()
                settle(page)
                page.screenshot(path=screenshots / f"{name}.png", full_page=True)
        finally:
            browser.close()

    with queue.session() as session:
        from compliance.deletion.batches import get_batch

        batch = get_batch(session, batch_id)
        assert (batch.reviewed_status, batch.reviewed_by) == ("accepted", OFFICER)


def test_every_role_sees_every_page_unclipped_and_survives_reloads_and_deep_links(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            for email, paths in ROLE_PAGES.items():
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(20_000)
                for path in paths:
                    # A deep link carrying the demo user, as a reload or a shared link has it.
                    page.goto(f"{dashboard_url}/{path}?as={email}")
                    settle(page)
                    expect(page.get_by_text(rendered(email)).first).to_be_visible()
                    if page.get_by_text("Page not found").count():
                        problems.append(f"{email} {path}: Page not found on its own link")
                    if f"/{path}?" not in page.url:
                        problems.append(f"{email} {path}: the address became {page.url}")
                    page.reload()
                    settle(page)
                    if page.get_by_text("Page not found").count():
                        problems.append(f"{email} {path}: Page not found after reload")
                    heading = page.get_by_role("heading", level=1).first.inner_text()
                    if heading in ("No access", "Privacy Desk"):
                        problems.append(f"{email} {path}: landed on {heading!r}")
                    for clipped in page.evaluate(CLIPPED_TABLES):
                        problems.append(f"{email} {path}: table clipped {clipped}")
                # The bare address opens the page of one's most powerful role, under its path.
                page.goto(f"{dashboard_url}/?as={email}")
                settle(page)
                if f"/{paths[0]}?" not in page.url:
                    problems.append(f"{email}: / went to {page.url}, not {paths[0]}")
                nav = page.get_by_test_id("stSidebarNav")
                shown = sorted(nav.get_by_role("link").all_inner_texts())
                if len(shown) != (len(paths) if len(paths) > 1 else 0):  # one page: no menu
                    problems.append(f"{email}: sidebar lists {shown}")
                page.context.close()

            # The link a Slack alert sends, opened by someone not signed in yet.
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{dashboard_url}/deletion_batches?bucket=closed_accounts")
            settle(page)
            expect(page.get_by_text("Demo mode: choose who you are")).to_be_visible()
            expect(page.get_by_text("Page not found")).to_have_count(0)
            page.get_by_role("combobox", name="Signed in as (demo mode)").click()
            page.get_by_role("option", name=OFFICER).click()
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            expect(page.get_by_role("combobox", name="Bucket")).to_have_value("closed_accounts")
            page.reload()
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            expect(page.get_by_text("Page not found")).to_have_count(0)

            # A page one's role does not include says so, rather than "Page not found".
            page.goto(f"{dashboard_url}/deletion_batches?as={SUPPORT}")
            expect(page.get_by_role("heading", name="No access")).to_be_visible()
            expect(page.get_by_text("Page not found")).to_have_count(0)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_an_officer_selects_two_batches_and_accepts_both_in_one_confirmation(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{dashboard_url}/deletion_batches?bucket=closed_accounts&as={OFFICER}")
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            settle(page)
            table = page.get_by_test_id("stDataFrame").first
            box = table.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + 100, box["y"] + 52)  # focus the grid on a cell
            for row in (0, 1):  # the row-selection boxes at the left of the first two rows
                page.mouse.click(box["x"] + 16, box["y"] + 35 * (row + 1) + 17)
                settle(page)
            expect(page.get_by_text("2 pending batch(es) selected")).to_be_visible()
            expect(page.get_by_text("Combined impact of 2 batch(es)")).to_be_visible()
            page.get_by_role("button", name="Accept 2 batch(es)…").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_role("button", name="Accept 2 batch(es)").click()
            expect(page.get_by_text("2 batch(es) accepted")).to_be_visible()
        finally:
            browser.close()
    with queue.session() as session:
        from compliance.reports.review_queue import list_batches

        frame = list_batches(session, bucket="closed_accounts", limit=2).frame
    assert set(frame["status"]) == {"accepted"} and set(frame["reviewed_by"]) == {OFFICER}
