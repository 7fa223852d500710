"""Export files in an S3-compatible bucket ([exports] storage = "s3"), on both databases.

A real S3-protocol server (moto in server mode) listens on loopback, one per module; every
test has a bucket of its own. What the tests check is what an operator would: where each
file landed and under what name, whether it is encrypted, that it comes back whole, that a
deletion leaves no version behind, and what a job says and leaves when the bucket fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tomllib
import zipfile
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from compliance.dsar.cleanup import cleanup_expired_exports
from compliance.dsar.delivery import create_delivery, redeem_delivery
from compliance.dsar.desk import request_detail, start_export
from compliance.dsar.downloads import open_export_for_download
from compliance.dsar.forget import forget_subject
from compliance.dsar.processing import CLAIM_LEASE, process_dsar_requests
from compliance.errors import ConfigError
from compliance.policy.exports import parse_exports
from compliance.policy.loader import parse_policy
from compliance.storage import Area, StoredFileDamaged, export_store
from compliance.storage.folder import FolderStore
from compliance.storage.s3 import S3Store
from compliance.store.models import DsarRequest, ErasureTask, UserExport, utcnow
from compliance.systems.manual_tasks import confirm_task
from tests.conftest import (
    BY_SUPPORT,
    DEMO_POLICY,
    DPO,
    ROOT,
    SUPPORT_STAFF,
    Deployment,
    fill_demo,
)
from tests.dsar.test_dsar_exports import access_requests
from tests.s3_server import S3Server, exports_section
from tests.s3_server import s3_credentials as s3_credentials  # the fixture
from tests.s3_server import s3_server as s3_server  # the fixture (one server per module)

#: An object's name in the bucket: prefix, area, 32 random hex digits, the file's kind.
RANDOM_NAME = re.compile(r"desk/(exports|tasks|support)/[0-9a-f]{32}\.(zip|json|csv)")


@pytest.fixture
def bucketed(
    deployment: Deployment, s3_server: S3Server, s3_credentials: dict[str, str]
) -> tuple[Deployment, str]:
    """A small demo whose export files go to a bucket of its own."""
    bucket = s3_server.new_bucket(versioned=True)
    deployment.write_policy(DEMO_POLICY + exports_section(s3_server, bucket))
    fill_demo(deployment, users_count=60, seed=3)
    return deployment, bucket


def build(d: Deployment, subject: str) -> DsarRequest:
    (reference,) = access_requests(d, subject)
    with d.session() as s:
        result = process_dsar_requests(s, d.datamap(), actor="worker", execute=True)
        assert result.ready == [reference], result
        return s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()


def key_of(location: str, bucket: str) -> str:
    assert location.startswith(f"s3://{bucket}/"), location
    return location.removeprefix(f"s3://{bucket}/")


# ---------------------------------------------------------------- the policy


def test_the_exports_section_is_checked_and_never_takes_credentials() -> None:
    assert parse_exports({}).storage == "folder"
    s3 = parse_exports({"storage": "s3", "bucket": "exports-eu", "prefix": "desk"})
    assert (s3.prefix, s3.max_download_mb) == ("desk/", 200)
    refused = {
        "exports.bucket: missing": {"storage": "s3"},
        "exports.storage: must be one of folder, s3": {"storage": "nfs"},
        'exports.bucket: only read with storage = "s3"': {"bucket": "exports-eu"},
        "exports.bucket: 'Exports_EU' is not an S3 bucket name": {
            "storage": "s3", "bucket": "Exports_EU"},
        "exports.sse: must be one of AES256, aws:kms": {
            "storage": "s3", "bucket": "b-1", "sse": "DES"},
        "exports.aws_secret_access_key: credentials never go in the policy file": {
            "storage": "s3", "bucket": "b-1", "aws_secret_access_key": "x"},
        "exports.endpoint_url: credentials never go in the policy file": {
            "storage": "s3", "bucket": "b-1", "endpoint_url": "https://key:secret@minio:9000"},
        "exports.prefix: '/abs' is not an object name prefix": {
            "storage": "s3", "bucket": "b-1", "prefix": "/abs"},
        "exports.max_download_mb: 0 (every download by a presigned URL) needs storage": {
            "max_download_mb": 0},
        "exports.region: unknown key": {"region": "x", "storage": "folder", "dir": "y"},
    }  # fmt: skip
    for message, section in refused.items():
        with pytest.raises(ConfigError) as caught:
            parse_exports(section)
        assert str(caught.value).startswith(message.split(": unknown")[0]), (message, caught.value)
    # Through the whole file too: the section is read with every other.
    whole = tomllib.loads(DEMO_POLICY + '\n[exports]\nstorage = "s3"\n')
    with pytest.raises(ConfigError, match=r"^exports\.bucket: missing"):
        parse_policy(whole, env={})


# ---------------------------------------------------------------- writing and reading


def test_an_export_lands_in_the_bucket_encrypted_under_a_name_that_says_nothing(
    bucketed: tuple[Deployment, str], s3_server: S3Server, tmp_path: Any
) -> None:
    d, bucket = bucketed
    user = d.app_rows("users", "id = 17")[0]
    row = build(d, "17")
    key = key_of(row.export_path, bucket)
    # Prefix, area and 32 random hex digits: no reference, no email, no subject id (a digit
    # pair like "17" may turn up among random ones by chance, so the pattern is the check).
    assert RANDOM_NAME.fullmatch(key), key
    assert row.reference not in key and user["email"] not in key
    head = s3_server.client().head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == row.export_bytes
    assert not any((d.dir / folder).exists() for folder in ("exports", "var")), "no local copy"

    # Support's download and the subject's both read it back whole.
    with d.session() as s:
        handed = open_export_for_download(s, d.policy(), row.reference, actor=SUPPORT_STAFF)
        new = create_delivery(
            s, row.reference, actor=SUPPORT_STAFF, download_url="http://x", policy=d.policy()
        )
        s.commit()
    assert handed.content is not None and handed.filename == f"{row.reference}.zip"
    assert hashlib.sha256(handed.content).hexdigest() == row.export_sha256
    with zipfile.ZipFile(io.BytesIO(handed.content)) as archive:
        document = json.loads(archive.read("data.json"))
    assert [u["id"] for u in document["tables"]["users"]] == [17]
    with d.session() as s:
        download = redeem_delivery(s, new.token, new.otp, policy=d.policy())
    assert download.content == handed.content and download.url is None

    # Support's direct export: into the bucket (with its row) unless --output names a folder.
    stored = d.run("--json", "export-user-data", *BY_SUPPORT, "--subject-id", "17",
                   env={"COMPLIANCE_EXPORT_DIR": str(tmp_path / "unused")})  # fmt: skip
    assert stored.exit_code == 0, stored.output
    location = json.loads(stored.stdout)["path"]
    assert RANDOM_NAME.fullmatch(key_of(location, bucket))
    with d.session() as s:
        assert s.scalars(
            select(UserExport.subject_id).where(UserExport.location == location)
        ).all() == ["17"]
    local = d.run("--json", "export-user-data", *BY_SUPPORT, "--subject-id", "17",
                  "--output", str(tmp_path / "desk"))  # fmt: skip
    assert local.exit_code == 0, local.output
    assert json.loads(local.stdout)["path"].startswith(str(tmp_path / "desk" / "subject-17-"))
    assert len(s3_server.keys(bucket, "desk/support/")) == 1


def test_above_max_download_mb_the_code_unlocks_a_presigned_url_valid_for_60_seconds(
    deployment: Deployment, s3_server: S3Server, s3_credentials: dict[str, str]
) -> None:
    bucket = s3_server.new_bucket()
    body = DEMO_POLICY + exports_section(s3_server, bucket, max_download_mb=0)
    deployment.write_policy(body)
    fill_demo(deployment, users_count=30, seed=5)
    row = build(deployment, "9")
    policy = deployment.policy()
    with deployment.session() as s:
        new = create_delivery(
            s, row.reference, actor=SUPPORT_STAFF, download_url="http://x", policy=policy
        )
        s.commit()
    with deployment.session() as s, pytest.raises(Exception, match="wrong code"):
        redeem_delivery(s, new.token, "000000" if new.otp != "000000" else "111111",
                        policy=policy)  # fmt: skip
    with deployment.session() as s:
        download = redeem_delivery(s, new.token, new.otp, policy=policy)
    assert download.content is None and download.url is not None
    assert "X-Amz-Expires=60" in download.url
    answer = httpx.get(download.url, timeout=10)
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == row.export_sha256
    assert f'filename="{row.reference}.zip"' in answer.headers["content-disposition"]
    assert httpx.get(download.url.split("&X-Amz-Signature")[0], timeout=10).status_code == 403


def test_a_damaged_upload_is_removed_and_never_counts(
    s3_server: S3Server, s3_credentials: dict[str, str], tmp_path: Any
) -> None:
    bucket = s3_server.new_bucket()
    settings = {"storage": "s3", "bucket": bucket, "endpoint_url": s3_server.endpoint}
    store = S3Store(parse_exports(settings), local=FolderStore(tmp_path))
    kept = store.write(Area.EXPORTS, "x.zip", lambda handle: handle.write(b"a" * 5000))
    assert store.read(kept.location, sha256=kept.sha256) == b"a" * 5000
    put = store._client.put_object  # type: ignore[attr-defined]

    def cut_short(**params: Any) -> Any:  # a proxy that drops the end of the body
        params["Body"] = params["Body"].read()[:100]
        params["ContentLength"] = 100
        return put(**params)

    store._client.put_object = cut_short  # type: ignore[attr-defined]
    try:
        with pytest.raises(StoredFileDamaged, match="counts for nothing"):
            store.write(Area.EXPORTS, "y.zip", lambda handle: handle.write(b"b" * 5000))
    finally:
        store._client.put_object = put  # type: ignore[attr-defined]
    assert s3_server.keys(bucket) == [key_of(kept.location, bucket)]


# ---------------------------------------------------------------- systems' parts, cleanup, erasure


def test_erasure_and_cleanup_leave_no_version_of_a_subjects_objects(
    bucketed: tuple[Deployment, str], s3_server: S3Server
) -> None:
    d, bucket = bucketed
    d.write_policy(
        DEMO_POLICY.replace("systems = []  ", 'systems = ["newsletter"]  ', 1)
        + exports_section(s3_server, bucket)
    )
    (reference,) = access_requests(d, "21")
    with d.session() as s:
        process_dsar_requests(s, d.datamap(), actor="worker", execute=True)  # waits for a person
        task = s.scalars(select(ErasureTask).where(ErasureTask.system == "newsletter")).one()
        confirm_task(
            s, task.id, actor=DPO, note="Exported the contact", execute=True,
            upload=("contact list.csv", b"email\nx@example.org\n"), store=export_store(d.policy()),
        )  # fmt: skip
        s.refresh(task)
        task_id = task.id
        assert RANDOM_NAME.fullmatch(key_of(task.file_path or "", bucket))
        later = utcnow() + timedelta(minutes=2)
        done = process_dsar_requests(s, d.datamap(), actor="worker", execute=True, now=later)
        assert done.ready == [reference]
        export = s.scalars(select(DsarRequest.export_path)).one()
    content = export_store(d.policy()).read(export or "")
    with zipfile.ZipFile(io.BytesIO(content or b"")) as archive:
        assert archive.read("newsletter/contact_list.csv") == b"email\nx@example.org\n"
    for subject in ("21", "22"):
        ok = d.run("export-user-data", *BY_SUPPORT, "--subject-id", subject)
        assert ok.exit_code == 0, ok.output
    assert len(s3_server.keys(bucket)) == 4  # the ZIP, the upload, two support exports

    with d.session() as s:
        request = s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()
        forgotten = forget_subject(s, d.policy(), request, actor="worker")
        s.commit()
    assert forgotten.export_files == 3
    (left,) = s3_server.keys(bucket)
    assert s3_server.versions(bucket) == s3_server.versions(bucket, left), "no version kept"
    with d.session() as s:
        assert s.scalars(select(UserExport.subject_id)).all() == ["22"]
        assert (
            s.scalars(select(ErasureTask.file_path).where(ErasureTask.id == task_id)).one() is None
        )

    # Cleanup: expired support exports go, and so does an object no row names, once abandoned.
    stray = s3_server.client().put_object(Bucket=bucket, Key="desk/exports/stray.zip", Body=b"x")
    assert stray["VersionId"]
    with d.session() as s:
        soon = cleanup_expired_exports(s, d.policy(), actor="cron", execute=True)
    assert (soon.user_exports, soon.temp_files) == (0, 0), "written too recently to be abandoned"
    with d.session() as s:
        late = cleanup_expired_exports(
            s, d.policy(), actor="cron", execute=True, now=utcnow() + timedelta(days=31)
        )
    assert (late.user_exports, late.temp_files) == (1, 1)
    assert s3_server.versions(bucket) == []


# ---------------------------------------------------------------- faults


def test_an_unreachable_bucket_stops_the_job_in_one_line_with_exit_1_and_loses_nothing(
    bucketed: tuple[Deployment, str], s3_server: S3Server
) -> None:
    d, bucket = bucketed
    from tests.smtp_server import free_port

    d.write_policy(
        DEMO_POLICY + exports_section(s3_server, bucket).replace(
            s3_server.endpoint, f"http://127.0.0.1:{free_port()}"
        )
    )  # fmt: skip
    refs = access_requests(d, "3", "4")
    result = d.run("process-dsar-requests", "--execute")
    assert result.exit_code == 1, result.output
    said = [line for line in result.stderr.splitlines() if not line.startswith("ts=")]
    assert len(said) == 1 and said[0].startswith("Error: the export bucket s3://"), said
    assert "is unreachable" in said[0]
    with d.session() as s:
        rows = s.scalars(select(DsarRequest).order_by(DsarRequest.id)).all()
        assert [(r.status, r.attempts, r.export_path) for r in rows] == [("approved", 0, None)] * 2
        assert "unreachable" in (rows[0].last_error or "")
    d.write_policy(DEMO_POLICY + exports_section(s3_server, bucket))  # the bucket is back
    assert d.run("process-dsar-requests", "--execute").exit_code == 0
    with d.session() as s:
        assert {r.reference: r.status for r in s.scalars(select(DsarRequest))} == dict.fromkeys(
            refs, "ready"
        )


def test_a_missing_bucket_or_refused_credentials_exit_2_and_the_request_stays_retryable(
    bucketed: tuple[Deployment, str], s3_server: S3Server
) -> None:
    d, bucket = bucketed
    (reference,) = access_requests(d, "5")
    d.write_policy(DEMO_POLICY + exports_section(s3_server, "pd-no-such-bucket"))
    missing = d.run("process-dsar-requests", "--execute")
    assert missing.exit_code == 2, missing.output
    assert "s3://pd-no-such-bucket/desk/" in missing.stderr and "does not exist" in missing.stderr
    d.write_policy(DEMO_POLICY + exports_section(s3_server, bucket))
    with s3_server.checking_credentials():
        refused = d.run("process-dsar-requests", "--execute")
    assert refused.exit_code == 2, refused.output
    assert "refused the credentials: InvalidAccessKeyId" in refused.stderr
    with d.session() as s:
        row = s.scalars(select(DsarRequest)).one()
        assert (row.status, row.attempts) == ("approved", 0)
        timeline = request_detail(s, d.policy(), reference, roles={"support"}).timeline
    errors = [
        e.details.get("error", "") for e in timeline if e.label == "Attempt failed, will retry"
    ]
    assert len(errors) == 2 and "does not exist" in errors[0] and "credentials" in errors[1]
    assert d.run("process-dsar-requests", "--execute").exit_code == 0
    with d.session() as s:
        assert s.scalars(select(DsarRequest.status)).one() == "ready"


def test_a_job_killed_between_upload_and_commit_leaves_no_export_and_a_rerun_finishes(
    bucketed: tuple[Deployment, str], s3_server: S3Server, s3_credentials: dict[str, str]
) -> None:
    d, bucket = bucketed
    (reference,) = access_requests(d, "6")
    killed = d.run_process(
        "process-dsar-requests", "--execute", env={"COMPLIANCE_FAILPOINT": "store.before_check"}
    )
    killed.communicate(timeout=120)
    assert killed.returncode == -9
    (orphan,) = s3_server.keys(bucket)
    with d.session() as s:
        row = s.scalars(select(DsarRequest)).one()
        assert (row.status, row.export_path, row.export_sha256) == ("processing", None, None)
        rerun = process_dsar_requests(
            s, d.datamap(), actor="worker", execute=True, now=utcnow() + CLAIM_LEASE
        )
        assert rerun.ready == [reference]
        s.expire_all()
        kept = key_of(s.scalars(select(DsarRequest.export_path)).one() or "", bucket)
    assert sorted(s3_server.keys(bucket)) == sorted([orphan, kept])
    with d.session() as s:
        swept = cleanup_expired_exports(
            s, d.policy(), actor="cron", execute=True, now=utcnow() + timedelta(hours=7)
        )
    assert (swept.temp_files, swept.exports) == (1, 0)
    assert s3_server.keys(bucket) == [kept]


def test_export_now_is_claimed_with_the_jobs_lease_so_a_scheduled_run_finishes_it(
    bucketed: tuple[Deployment, str], s3_server: S3Server
) -> None:
    d, bucket = bucketed
    d.write_policy(DEMO_POLICY.replace("access_review = true", "access_review = false", 1)
                   + exports_section(s3_server, bucket))  # fmt: skip
    with d.session() as s:
        from compliance.dsar.requests import submit_dsar

        request = submit_dsar(s, d.policy(), d.app_engine, kind="access", subject_id="8",
                              requested_by=SUPPORT_STAFF, execute=True)  # fmt: skip
        reference = request.reference
        start_export(s, d.policy(), reference, actor=SUPPORT_STAFF, execute=True)
        # ... and the dashboard process dies before it built anything.
        soon = process_dsar_requests(s, d.datamap(), actor="cron", execute=True)
        assert soon.claimed == 0 and s3_server.keys(bucket) == []
        later = process_dsar_requests(
            s, d.datamap(), actor="cron", execute=True, now=utcnow() + CLAIM_LEASE
        )
    assert later.ready == [reference]
    assert len(s3_server.keys(bucket, "desk/exports/")) == 1


def test_the_download_page_says_temporarily_unavailable_while_the_store_is_down(
    bucketed: tuple[Deployment, str], s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.smtp_server import free_port

    d, bucket = bucketed
    d.use_env(monkeypatch)
    row = build(d, "11")
    with d.session() as s:
        new = create_delivery(
            s, row.reference, actor=SUPPORT_STAFF, download_url="http://x", policy=d.policy()
        )
        s.commit()
    down = exports_section(s3_server, bucket).replace(
        s3_server.endpoint, f"http://127.0.0.1:{free_port()}"
    )
    d.write_policy(DEMO_POLICY + down)

    def unlock() -> AppTest:
        at = AppTest.from_file(str(ROOT / "dashboard" / "download.py"), default_timeout=60)
        at.query_params["token"] = new.token
        at.run()
        at.text_input[0].input(new.otp)
        return at.button[0].click().run()

    at = unlock()
    assert [e.value for e in at.error] == [
        "The download service is temporarily unavailable. Please try again later."
    ]
    assert not at.get("download_button") and not at.exception
    d.write_policy(DEMO_POLICY + exports_section(s3_server, bucket))  # the store is back
    at = unlock()
    assert not at.error and len(at.get("download_button")) == 1, "the link was not used up"
