"""The request desk end to end in a real Chromium: support logs a request, an officer approves
it, support exports and sends it, and the data subject redeems the link on the download page.

Runs the dashboard and the subject's download page as two Streamlit servers on loopback
ports, with a local aiosmtpd server as the mail server. Saves README screenshots.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compliance.dsar import desk
from compliance.dsar.delivery import DOWNLOAD_URL_ENV
from compliance.reports.review_queue import dsar_requests
from tests.browser.test_dashboard_in_chromium import (
    CHROMIUM,
    SCREENSHOTS,
    running_dashboard,
    server_env,
    server_wait,
    settle,
    sign_in_as,
    wait_until_healthy,
)
from tests.conftest import DEMO_POLICY, ROOT, Deployment, with_mail_server
from tests.dashboard.conftest import OFFICER, SUPPORT, queue  # noqa: F401
from tests.smtp_server import Inbox, free_port
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture
from tests.test_readme import BLOCKS as README_BLOCKS

pytestmark = pytest.mark.browser


#: README's command for the subject's download page, the one marked for tests/test_readme.py.
DOWNLOAD_PAGE_COMMAND = next(
    block.text.strip() for block in README_BLOCKS if "dashboard/download.py" in block.text
)
README_VENV = ".venv/bin/"


def download_page_command(port: int) -> list[str]:
    """README's command as this checkout runs it: this virtualenv's ``streamlit`` script and a
    free port instead of README's 8503, which other tests (test_readme's) may be using."""
    words = shlex.split(DOWNLOAD_PAGE_COMMAND)
    assert words[0].startswith(README_VENV) and "8503" in words, DOWNLOAD_PAGE_COMMAND
    words[0] = str(Path(sys.executable).parent / words[0].removeprefix(README_VENV))
    return [str(port) if word == "8503" else word for word in words]


@contextlib.contextmanager
def running_download_page(deployment: Deployment) -> Iterator[str]:
    """The subject's download page, started with README's command from the checkout's root
    (so .streamlit/config.toml applies, as for a reader), stopped afterwards.

    README's install puts the checkout on the path (``-e .`` in requirements.txt); the suite's
    virtualenv may not have it, so PYTHONPATH does that here."""
    port = free_port()
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    server = subprocess.Popen(
        download_page_command(port), cwd=ROOT, env=server_env(deployment, {"PYTHONPATH": path}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server_wait(server, 10)
        if server.poll() is None:
            server.kill()


def open_dsar_page(page: Any) -> None:
    """Through the sidebar, when the person has more pages than this one (support has not)."""
    from playwright.sync_api import expect

    settle(page)
    link = page.get_by_test_id("stSidebarNav").get_by_text("DSAR requests", exact=True)
    if link.count():
        link.click()
    expect(page.get_by_role("heading", name="DSAR requests")).to_be_visible()
    settle(page)


def select_row(page: Any, index: int) -> None:
    """Tick the row's selection box in the data grid (drawn on a canvas, so by position)."""
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    row_height = 35  # Streamlit's default row height, the header row included
    page.mouse.click(box["x"] + 20, box["y"] + row_height * (index + 1) + row_height / 2)


def test_support_exports_and_sends_and_the_subject_downloads_in_the_browser(
    queue: Deployment,  # noqa: F811
    smtp_inbox: Inbox,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    queue.write_policy(with_mail_server(DEMO_POLICY, smtp_inbox.port))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=30_000)  # two Streamlit servers and an export on a busy machine
    with running_download_page(queue) as download_url:
        dashboard = running_dashboard(queue, env={DOWNLOAD_URL_ENV: download_url})
        with dashboard as dashboard_url, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(dashboard_url)

                # Support logs the request, with how the caller's identity was checked.
                sign_in_as(page, queue, SUPPORT)
                open_dsar_page(page)
                page.get_by_label("Subject id").fill("31")
                page.get_by_role(
                    "combobox", name="How the requester's identity was checked"
                ).click()
                page.get_by_role("option", name="id document").click()
                page.get_by_label("Identity check note (who checked what)").fill(
                    "Passport shown at the service desk"
                )
                page.get_by_role("button", name="Log request").click()
                logged = page.get_by_text(re.compile(r"Logged DSAR-\d{4}-\d{6}"))
                expect(logged).to_be_visible()
                reference = re.search(r"DSAR-\d{4}-\d{6}", logged.inner_text()).group(0)
                expect(
                    page.get_by_text("Waiting for approval by a compliance officer.")
                ).to_be_visible()

                # The officer opens it by selecting its row, sees the check, approves.
                sign_in_as(page, queue, OFFICER)
                open_dsar_page(page)
                with queue.session() as s:
                    order = dsar_requests(s, limit=50)[0]["reference"].tolist()
                select_row(page, order.index(reference))
                expect(page.get_by_role("heading", name=reference)).to_be_visible()
                expect(
                    page.get_by_text("id document: Passport shown at the service desk")
                ).to_be_visible()
                settle(page)  # a click during the selection's rerun can be lost on a busy machine
                page.get_by_role("button", name="Approve…").click()
                page.get_by_role("dialog").get_by_role("button", name="Approve").click()
                expect(page.get_by_text(f"{reference} approved.")).to_be_visible()

                # Support exports now (progress in the background), then sends the link.
                sign_in_as(page, queue, SUPPORT)
                page.goto(f"{dashboard_url}/dsar_requests?reference={reference}&as={SUPPORT}")
                expect(page.get_by_role("heading", name=reference)).to_be_visible()
                page.get_by_role("button", name="Export now").click()
                expect(page.get_by_text(f"The export of {reference} is ready.")).to_be_visible(
                    timeout=90_000
                )
                page.get_by_role("button", name="Send to subject").click()
                expect(page.get_by_text(re.compile(f"Emailed {reference}"))).to_be_visible()
                settle(page)
                page.screenshot(path=SCREENSHOTS / "dsar_request_detail.png", full_page=True)

                # The subject redeems the link with the code from the second email.
                link_mail, code_mail = smtp_inbox.bodies()[-2:]
                link = re.search(r"(http://127\.0\.0\.1:\d+/?\?token=\S+)", link_mail).group(1)
                code = re.search(r"code is (\d{6})", code_mail).group(1)
                subject_page = browser.new_page(viewport={"width": 1000, "height": 800})
                subject_page.goto(link)
                subject_page.get_by_label("The 6-digit code from our second email").fill(code)
                subject_page.get_by_role("button", name="Unlock").click()
                expect(subject_page.get_by_text("Your export is ready.")).to_be_visible()
                expect(
                    subject_page.get_by_role("button", name=re.compile("Download"))
                ).to_be_visible()
                settle(subject_page)
                subject_page.screenshot(path=SCREENSHOTS / "download_page.png", full_page=True)
            finally:
                browser.close()

    with queue.session() as s:
        detail = desk.request_detail(s, queue.policy(), reference, roles={"support"})
    labels = [e.label for e in detail.timeline]
    assert labels == [
        "Logged",
        "Approved",
        "Export started",
        "Export built, ready to send",
        "Link and code sent to the subject",
        "Completed",
        "Subject downloaded the export",
    ]
