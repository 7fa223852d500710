"""Issue 29 end to end: the desk on machines that share nothing but the database and the bucket.

The job that builds exports and the subject's download page run as separate processes, each
in a working directory and a temp folder of its own (no shared disk), against PostgreSQL and
a real S3-protocol server on loopback (moto in server mode, one per module). An access export
is built into the bucket, its link and code go out through an SMTP sink, the subject
downloads it in Chromium from the page on the other "machine"; erasing a subject removes
every version of their objects, and cleanup removes an expired export's object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from compliance.dsar.decisions import review_dsar
from compliance.dsar.delivery import DOWNLOAD_URL_ENV
from compliance.dsar.requests import submit
from compliance.store.models import DsarRequest, utcnow
from tests.browser.test_dashboard_in_chromium import (
    CHROMIUM,
    launch,
    server_wait,
    wait_until_healthy,
)
from tests.conftest import (
    BY_SUPPORT,
    DEMO_POLICY,
    DPO,
    ROOT,
    SUPPORT_STAFF,
    Backend,
    Deployment,
    fill_demo,
    make_deployment,
)
from tests.s3_server import CREDENTIALS, S3Server, exports_section
from tests.s3_server import s3_server as s3_server  # the fixture (one server per module)
from tests.smtp_server import Inbox, free_port, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def on_postgres(pg_server_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on PostgreSQL only: what several machines share is a database server."""
    backend = Backend("postgresql", tmp_path, pg_server_url)
    deployment = make_deployment(backend, tmp_path / "database")
    try:
        yield deployment
    finally:
        deployment.dispose()
        backend.cleanup()


class Machine:
    """A host of its own: a working directory, a temp folder and an export folder that no
    other machine sees, the policy file as its ConfigMap would mount it, and the bucket's
    credentials in its environment."""

    def __init__(self, root: Path, name: str, policy: str, extra: dict[str, str]) -> None:
        self.dir = root / name
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir(parents=True)
        (self.dir / "compliance.toml").write_text(policy)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "AWS_"))},
            **CREDENTIALS,
            **extra,
            "COMPLIANCE_CONFIG": str(self.dir / "compliance.toml"),
            "COMPLIANCE_EXPORT_DIR": str(self.dir / "exports"),
            "COMPLIANCE_ACTOR": f"job:{name}",
            "TMPDIR": str(self.tmp),
            # The checkout's packages, not another installed copy of them.
            "PYTHONPATH": str(ROOT),
        }

    def job(self, *args: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "jobs", "--json", *args], cwd=self.dir, env=self.env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return dict(json.loads(done.stdout))

    def local_files(self) -> list[str]:
        """Whatever this machine holds on its own disk besides its policy file and logs."""
        return sorted(
            str(p.relative_to(self.dir))
            for p in self.dir.rglob("*")
            if p.is_file() and p.name not in ("compliance.toml", "page.log")
        )

    @contextlib.contextmanager
    def download_page(self) -> Iterator[str]:
        """``streamlit run dashboard/download.py`` on this machine, on a free loopback port."""
        port = free_port()
        log = (self.dir / "page.log").open("w")
        page = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "download.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=self.dir, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, page)  # type: ignore[arg-type]
            yield url
        finally:
            page.terminate()
            server_wait(page, 10)  # type: ignore[arg-type]
            if page.poll() is None:
                page.kill()
            log.close()


def approved(d: Deployment, kind: str, subject: str) -> str:
    with d.session() as s:
        made = submit(
            s, d.policy(), d.app_engine, kind=kind, subject_id=subject,
            requested_by=SUPPORT_STAFF, identity_check="ID card seen", execute=True,
        )  # fmt: skip
        review_dsar(s, made.request.reference, "approve", reviewer=DPO, four_eyes=True,
                    policy=d.policy(), execute=True)  # fmt: skip
        return made.request.reference


def export_of(d: Deployment, reference: str) -> DsarRequest:
    with d.session() as s:
        return s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()


def link_and_code(inbox: Inbox, reference: str) -> tuple[str, str]:
    bodies = {m["Subject"]: m.get_content() for m in inbox.messages}
    link = re.search(r"http://\S+token=\S+", bodies[f"Your personal data export ({reference})"])
    code = re.search(r"code is (\d{6})", bodies[f"Your download code ({reference})"])
    assert link and code, bodies
    return link.group(0), code.group(1)


def download_in_chromium(link: str, code: str, folder: Path) -> Path:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(link)
            expect(page.get_by_role("heading", name="Download your data")).to_be_visible()
            page.get_by_label("The 6-digit code from our second email").fill(code)
            page.get_by_role("button", name="Unlock").click()
            expect(page.get_by_text("Your export is ready.")).to_be_visible()
            with page.expect_download() as started:
                page.get_by_role("button", name="Download your data (ZIP)").click()
            saved = folder / started.value.suggested_filename
            started.value.save_as(saved)
            return saved
        finally:
            browser.close()


def test_jobs_and_the_download_page_on_two_machines_share_only_the_database_and_the_bucket(
    on_postgres: Deployment, s3_server: S3Server, smtp_inbox: Inbox, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium")
    d = on_postgres
    bucket = s3_server.new_bucket(versioned=True)
    d.write_policy(mailing_to(smtp_inbox, DEMO_POLICY) + exports_section(s3_server, bucket))
    fill_demo(d, users_count=40, seed=11)
    body = d.policy_path.read_text()  # the test's database URLs in place
    page_machine = Machine(tmp_path, "download-page", body, {})
    with page_machine.download_page() as page_url:
        jobs_machine = Machine(tmp_path, "jobs", body, {DOWNLOAD_URL_ENV: page_url})
        kept, erased = approved(d, "access", "7"), approved(d, "access", "8")

        # Machine 1 builds both exports into the bucket and mails their links and codes.
        built = jobs_machine.job("process-dsar-requests", "--execute")
        assert sorted(built["delivered"]) == sorted([kept, erased])  # type: ignore[arg-type]
        row = export_of(d, kept)
        assert row.status == "completed" and row.export_path.startswith(f"s3://{bucket}/desk/")
        assert jobs_machine.local_files() == [], "the ZIP was spooled and uploaded, not kept"

        # The subject opens the link on machine 2, which reads the ZIP from the bucket.
        link, code = link_and_code(smtp_inbox, kept)
        assert link.startswith(page_url)
        saved = download_in_chromium(link, code, tmp_path)
    assert saved.name == f"{kept}.zip"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == row.export_sha256
    with zipfile.ZipFile(saved) as archive:
        document = json.loads(archive.read("data.json"))
    assert [str(u["id"]) for u in document["tables"]["users"]] == ["7"]
    assert page_machine.local_files() == [], "the page kept nothing on its disk"
    assert export_of(d, kept).export_path, "a download does not delete the export"

    # Erasing subject 8 removes every version of every object of theirs, and only theirs.
    support = jobs_machine.job("export-user-data", *BY_SUPPORT, "--subject-id", "8")
    theirs = [export_of(d, erased).export_path, str(support["path"])]
    keys = [location.removeprefix(f"s3://{bucket}/") for location in theirs]
    assert all(s3_server.versions(bucket, key) for key in keys)
    erasure = approved(d, "erasure", "8")
    jobs_machine.job("process-dsar-requests", "--execute")
    jobs_machine.job("apply-deletions", "--execute")
    done = jobs_machine.job("process-dsar-requests", "--execute")
    assert erasure in done["completed"]  # type: ignore[operator]
    assert [s3_server.versions(bucket, key) for key in keys] == [[], []]
    kept_key = export_of(d, kept).export_path.removeprefix(f"s3://{bucket}/")
    assert s3_server.keys(bucket) == [kept_key]

    # Past [retention.dsar_exports] days, cleanup on a third machine removes the object.
    with d.session() as s:
        s.execute(
            update(DsarRequest)
            .where(DsarRequest.reference == kept)
            .values(exported_at=utcnow() - timedelta(days=31))
        )
        s.commit()
    cleaner = Machine(tmp_path, "cleanup", body, {})
    cleaned = cleaner.job("cleanup-expired-exports", "--execute")
    assert cleaned["references"] == [kept]
    assert s3_server.versions(bucket) == [] and export_of(d, kept).export_path is None
