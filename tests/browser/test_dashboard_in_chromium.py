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

from dashboard.navigation import pages_for, url_path
from tests.conftest import ROOT, Deployment
from tests.dashboard.conftest import (  # noqa: F401
    MANAGER,
    OFFICER,
    PROXY_SECRET,
    SUPPORT,
    demo_picker_offered,
    pending_batch,
    proxy_headers,
    queue,
)

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
TITLES = {url_path(title): title for _, title, _, _ in pages_for(demo_mode=True)}
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
        "data_map",
        "outbox",
    ],
    SUPPORT: ["dsar_requests", "outbox"],
    MANAGER: ["progress", "audit_log", "jobs", "data_map", "outbox"],
}
# A table whose scroll width exceeds its visible width hides columns off to the right.
CLIPPED_TABLES = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .map((frame, index) => {
        const scroller = frame.querySelector('.dvn-scroller');
        return scroller && scroller.scrollWidth > scroller.clientWidth + 1
            ? {index, scroll: scroller.scrollWidth, client: scroller.clientWidth} : null;
    }).filter(Boolean)"""

# st.dataframe draws on a canvas, so a clipped cell shows in no scroll width ("9 day(s)
# overd…" passed that check). This reads each grid's columns (title and width as drawn) and
# cells from the grid component's own props, and measures every header and the widest cell
# text of the first rows with the grid's fonts, as the canvas draws them.
COLUMN_FIT = """() => {
    const canvas = document.createElement('canvas').getContext('2d');
    return [...document.querySelectorAll('[data-testid="stDataFrame"]')].flatMap((frame, index) => {
        const grid = frame.querySelector('canvas');
        if (!grid) return [];
        const key = Object.keys(grid).find(k => k.startsWith('__reactFiber'));
        let fiber = grid[key];
        while (fiber && !(fiber.memoizedProps && fiber.memoizedProps.getCellContent
                          && Array.isArray(fiber.memoizedProps.columns))) fiber = fiber.return;
        if (!fiber) return [{index, problem: 'no grid props found'}];
        const props = fiber.memoizedProps, theme = props.theme || {};
        const pad = 2 * (theme.cellHorizontalPadding || 8);
        const text = cell => {
            const shown = cell.displayData ?? (cell.data && cell.data.displayDate) ?? cell.data;
            return shown == null ? '' : String(shown);
        };
        const misfits = [];
        props.columns.forEach((column, c) => {
            if (!column.title) return;  // the row-selection boxes
            const width = column.width + (column.growOffset || 0);
            canvas.font = theme.headerFontFull;
            let widest = {text: column.title, px: canvas.measureText(column.title).width};
            canvas.font = theme.baseFontFull;
            for (let r = 0; r < Math.min(props.rows, 60); r++) {
                let shown;
                try { shown = text(props.getCellContent([c, r])); } catch (e) { continue; }
                const px = canvas.measureText(shown).width;
                if (px > widest.px) widest = {text: shown, px};
            }
            if (widest.px + pad > width + 1) {
                misfits.push({index, column: column.title, width: Math.round(width),
                              needs: Math.ceil(widest.px + pad), text: widest.text.slice(0, 60)});
            }
        });
        return misfits;
    });
}"""


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
    if deployment.policy().dashboard.demo_mode and not demo_picker_offered(deployment):
        # A demo desk on PostgreSQL offers no picker: the tests' proxy signs people in.
        env.setdefault("COMPLIANCE_PROXY_SECRET", PROXY_SECRET)
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


#: A page Streamlit has finished: its heading is there and nothing is running or stale.
SETTLED = """() => document.querySelector('h1')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-stale="true"]')"""
#: Every table in view has drawn its canvas (a grid paints lazily, after the run, and only
#: once it is in view: not in a closed tab or below the fold).
PAINTED = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .filter(frame => {
        const box = frame.getBoundingClientRect();
        return box.height > 0 && box.top < window.innerHeight && box.bottom > 0;
    })
    .every(frame => frame.querySelector('canvas'))"""


def tab(browser: Any, d: Deployment, email: str, viewport: Mapping[str, int] = VIEWPORT) -> Any:
    """A new tab for ``email``. Where the demo picker is not offered (PostgreSQL) the tab
    comes through the authenticating proxy, its headers sent with every request; on the
    demo's SQLite the ``?as=`` of the links it opens signs the person in (and is ignored
    where demo sign-in is refused)."""
    headers = {} if demo_picker_offered(d) else proxy_headers(email)
    page = browser.new_context(viewport=dict(viewport), extra_http_headers=headers).new_page()
    page.set_default_timeout(20_000)
    return page


def sign_in_as(page: Any, d: Deployment, email: str) -> None:
    """Become ``email``: through the demo picker on the demo's SQLite; behind the proxy (on
    PostgreSQL) the proxy vouches for ``email`` from now on and the desk is loaded afresh,
    as a person signing in at the proxy would see it."""
    if demo_picker_offered(d):
        page.get_by_role("combobox", name="Signed in as (demo mode)").click()
        page.get_by_role("option", name=email, exact=True).click()
        return
    page.context.set_extra_http_headers(proxy_headers(email))
    origin = re.match(r"https?://[^/]+", page.url)
    assert origin is not None, page.url
    page.goto(origin.group(0))


def settle(page: Any) -> None:
    """Wait until Streamlit has finished the run and the tables in view have painted: the
    same state twice, a quarter of a second apart (a fixed second after every load cost a
    minute a walk). A grid that never paints (an empty one, say) holds it up 3 s at most."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(2):
        page.wait_for_function(SETTLED, timeout=20_000)
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(PAINTED, timeout=3_000)
        page.wait_for_timeout(250)


def grids_drawn(page: Any, title: str) -> None:
    """Wait until the page titled ``title`` has replaced the last one and every table in view
    has drawn its grid (each paints lazily; the last page's tables linger until then)."""
    page.wait_for_function(
        """title => [...document.querySelectorAll('h1')].some(h => h.innerText === title)
            && !document.querySelector('[data-stale="true"]')
            && !document.querySelector('[data-testid="stStatusWidget"]')
            && !document.querySelector('[data-testid="stSkeleton"]')
            && [...document.querySelectorAll('[data-testid="stDataFrame"]')]
                .filter(frame => {
                    const box = frame.getBoundingClientRect();
                    return box.height > 0 && box.top < window.innerHeight && box.bottom > 0;
                })
                .every(frame => frame.querySelector('canvas'))""",
        arg=title,
        timeout=20_000,
    )
    page.wait_for_timeout(300)


def paint_every_grid(page: Any) -> None:
    """Scroll each table on the page into view until it has drawn (a grid paints only once
    it is in view), so a table below the fold is measured too; hidden ones (a closed tab)
    are left alone."""
    frames = page.get_by_test_id("stDataFrame")
    for i in range(frames.count()):
        frame = frames.nth(i)
        if not frame.is_visible():
            continue
        frame.scroll_into_view_if_needed()
        frame.locator("canvas").first.wait_for(timeout=10_000)
    page.wait_for_timeout(300)


def column_misfits(page: Any) -> list[dict[str, Any]]:
    """COLUMN_FIT once the grids hold still: a grid sizes its columns and fills its rows
    after it first paints, so the same answer twice, half a second apart, is the answer."""
    last = page.evaluate(COLUMN_FIT)
    for _ in range(10):
        page.wait_for_timeout(500)
        now = page.evaluate(COLUMN_FIT)
        if now == last:
            return now
        last = now
    return last


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
            page = tab(browser, queue, OFFICER, {"width": 1400, "height": 1000})
            page.goto(dashboard_url)
            if demo_picker_offered(queue):  # sign in through the demo picker
                expect(page.get_by_text("Demo mode: choose who you are")).to_be_visible()
                sign_in_as(page, queue, OFFICER)
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
        from compliance.deletion.review import get_batch

        batch = get_batch(session, batch_id)
        assert (batch.reviewed_status, batch.reviewed_by) == ("accepted", OFFICER)


def test_every_role_sees_every_page_unclipped_and_survives_reloads_and_deep_links(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            for email, paths in ROLE_PAGES.items():
                page = tab(browser, queue, email)
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
                with contextlib.suppress(PlaywrightTimeout):  # the address follows the run
                    page.wait_for_url(f"**/{paths[0]}?*", timeout=20_000)
                if f"/{paths[0]}?" not in page.url:
                    problems.append(f"{email}: / went to {page.url}, not {paths[0]}")
                nav = page.get_by_test_id("stSidebarNav")
                shown = sorted(nav.get_by_role("link").all_inner_texts())
                if len(shown) != (len(paths) if len(paths) > 1 else 0):  # one page: no menu
                    problems.append(f"{email}: sidebar lists {shown}")
                page.context.close()

            # The link a Slack alert sends, opened by someone not signed in yet (on the
            # demo's SQLite; behind the proxy the person arrives signed in).
            page = tab(browser, queue, OFFICER)
            page.goto(f"{dashboard_url}/deletion_batches?bucket=closed_accounts")
            settle(page)
            if demo_picker_offered(queue):
                expect(page.get_by_text("Demo mode: choose who you are")).to_be_visible()
                expect(page.get_by_text("Page not found")).to_have_count(0)
                sign_in_as(page, queue, OFFICER)
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            expect(page.get_by_role("combobox", name="Bucket")).to_have_value("closed_accounts")
            page.reload()
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            expect(page.get_by_text("Page not found")).to_have_count(0)

            # A page one's role does not include says so, rather than "Page not found".
            page.context.close()
            page = tab(browser, queue, SUPPORT)
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
            page = tab(browser, queue, OFFICER)
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


def desk_with_loose_ends(d: Deployment) -> int:
    """What makes wide cells: an exclusion with a note, a lifted hold, a refused job run.

    Returns the batch with the exclusion."""
    from sqlalchemy import select

    from compliance.deletion.exclusions import exclude_records
    from compliance.deletion.holds import lift_hold, place_hold, plan_lift_hold, plan_place_hold
    from compliance.store.models import DeletionRecord
    from tests.conftest import DPO

    batch_id = pending_batch(d, "closed_accounts")
    with d.session() as s:
        first = s.scalars(
            select(DeletionRecord.id).where(DeletionRecord.deletion_batch_id == batch_id)
        ).first()
        assert first is not None
        exclude_records(s, batch_id, {first: "Customer disputes an invoice"}, actor=DPO)
        hold = place_hold(s, plan_place_hold(s, subject_id="42", reason="Litigation", by=DPO))
        lift_hold(s, plan_lift_hold(s, hold.id, reason="Case settled", by=DPO))
    refused = d.run("review-batch", "999999", "--accept", "--reviewer", OFFICER, "--execute")
    assert refused.exit_code == 2
    requests_with_wide_cells(d)
    return batch_id


def requests_with_wide_cells(d: Deployment) -> None:
    """An overdue request ("9 day(s) overdue" was clipped), an access export with its
    system tasks and the mail it sent to the demo's outbox, a pending rectification."""
    from sqlalchemy import text

    from compliance.dsar.decisions import review_dsar
    from compliance.dsar.requests import submit
    from tests.conftest import person

    made = []
    with d.session() as s:
        for subject, kind in (("41", "access"), ("43", "erasure"), ("44", "access")):
            made.append(
                submit(
                    s, d.policy(), d.app_engine, kind=kind, subject_id=subject,
                    requested_by=person(SUPPORT), identity_method="id_document",
                    identity_check="Called back on the number held for the account",
                    execute=True,
                ).request.reference
            )  # fmt: skip
        review_dsar(s, made[2], "approve", reviewer=person(OFFICER), four_eyes=True, execute=True)
    with d.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE dsar_requests SET due_at = :due, latest_due_at = :due WHERE reference = :r"
            ),
            {"due": "2026-01-02 00:00:00", "r": made[0]},
        )
    assert d.run("process-dsar-requests", "--execute").exit_code in (0, 1)


def test_every_column_shows_its_header_and_widest_cell_at_1400_px(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    batch_id = desk_with_loose_ends(queue)
    links = {
        OFFICER: [
            f"deletion_batches?bucket=closed_accounts&batch={batch_id}",
            "legal_holds",
            "dsar_requests",
            "system_tasks",
            "outbox",
        ],
        MANAGER: ["progress", "audit_log", "jobs", "data_map"],
        SUPPORT: ["dsar_requests", "outbox"],
    }
    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            for email, paths in links.items():
                page = tab(browser, queue, email)
                for path in paths:
                    joiner = "&" if "?" in path else "?"
                    page.goto(f"{dashboard_url}/{path}{joiner}as={email}")
                    settle(page)
                    if path == "legal_holds":
                        page.get_by_text("Show lifted and ended holds too").click()
                        settle(page)
                        grids_drawn(page, "Legal holds")
                        # The lifted hold's reason is read whole below the table.
                        box = page.get_by_test_id("stDataFrame").first.bounding_box()
                        assert box is not None
                        page.mouse.click(box["x"] + 100, box["y"] + 52)
                        page.mouse.click(box["x"] + 16, box["y"] + 52)
                        settle(page)
                        expect(page.get_by_text("Case settled")).to_be_visible()
                    grids_drawn(page, TITLES[path.split("?")[0]])
                    paint_every_grid(page)
                    for misfit in column_misfits(page):
                        problems.append(f"{email} {path}: {misfit}")
                page.context.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_a_link_to_a_new_batch_shows_it_and_a_stale_preview_decides_nothing(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright
    from sqlalchemy import select

    from compliance.deletion.exclusions import exclude_records
    from compliance.deletion.review import get_batch
    from compliance.store.models import DeletionRecord
    from tests.conftest import DPO
    from tests.dashboard.test_batch_targets import NEW_BUCKET, first_batch

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = tab(browser, queue, OFFICER)
            # The page reads (and caches) its lists before the erasure bucket has a batch.
            page.goto(f"{dashboard_url}/deletion_batches?as={OFFICER}")
            expect(page.get_by_role("heading", name="Deletion batches")).to_be_visible()
            settle(page)
            page.goto(f"{dashboard_url}/deletion_batches?bucket=dsar_erasure&as={OFFICER}")
            expect(page.get_by_text("Bucket dsar_erasure has no deletion batch")).to_be_visible()
            expect(page.get_by_text("Impact preview")).to_have_count(0)

            batch_id = first_batch(queue)
            page.goto(f"{dashboard_url}/deletion_batches?bucket={NEW_BUCKET}&as={OFFICER}")
            expect(page.get_by_text(f"Batch {batch_id} · {NEW_BUCKET}")).to_be_visible()
            expect(page.get_by_role("combobox", name="Bucket")).to_have_value(NEW_BUCKET)

            # The dialog names what it decides; a colleague changes the batch meanwhile.
            page.get_by_role("button", name="Accept batch…").click()
            dialog = page.get_by_role("dialog")
            expect(
                dialog.get_by_text(f"You accept batch {batch_id} ({NEW_BUCKET}, 1 records)")
            ).to_be_visible()
            with queue.session() as s:
                record = s.scalars(
                    select(DeletionRecord.id).where(DeletionRecord.deletion_batch_id == batch_id)
                ).one()
                exclude_records(s, batch_id, {record: "Subject withdrew the request"}, actor=DPO)
            dialog.get_by_role("button", name="Accept and schedule erasure").click()
            expect(page.get_by_text(f"batch {batch_id} changed since you looked")).to_be_visible()
        finally:
            browser.close()
    with queue.session() as s:
        assert get_batch(s, batch_id).reviewed_status == "pending"


def test_excluding_every_record_asks_first(
    queue: Deployment,  # noqa: F811
    dashboard_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright
    from sqlalchemy import func, select

    from compliance.store.models import DeletionRecord

    batch_id = pending_batch(queue)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = tab(browser, queue, OFFICER)
            page.goto(
                f"{dashboard_url}/deletion_batches?bucket=closed_accounts&batch={batch_id}"
                f"&as={OFFICER}"
            )
            expect(page.get_by_text(f"Batch {batch_id} · closed_accounts")).to_be_visible()
            settle(page)
            # The picker offers no "Select all".
            page.get_by_role("combobox", name="Exclude records (kept, never erased)").click()
            expect(page.get_by_role("option", name="Select all")).to_have_count(0)
            page.keyboard.press("Escape")

            page.get_by_role("button", name="Exclude all 5 record(s) still awaiting").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text(f"Exclude every record of batch {batch_id}?")).to_be_visible()
            dialog.get_by_role("button", name="Exclude all 5 record(s)").click()
            expect(dialog.get_by_text("Excluding every record needs a note")).to_be_visible()
            with queue.session() as s:
                kept = s.scalar(
                    select(func.count()).where(DeletionRecord.accepted_for_deletion.is_(False))
                )
            assert kept == 0  # asked, not done
            dialog.get_by_label("Note (why every record is kept)").fill("Test accounts")
            dialog.get_by_role("button", name="Exclude all 5 record(s)").click()
            expect(page.get_by_text("Excluded all 5 record(s)")).to_be_visible()
        finally:
            browser.close()
