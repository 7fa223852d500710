"""The intake API, driven over HTTP against a real uvicorn on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select, update

from compliance.dsar.api_keys import api_key_digest
from compliance.dsar.decisions import review_dsar
from compliance.reports.dsar_stats import list_dsar_requests
from compliance.store.models import ApiKey, AuditEvent, JobRun
from tests.conftest import DEMO_POLICY, DPO, ROOT, Deployment, with_mail_server
from tests.smtp_server import Inbox, free_port
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

OFFICER = "dpo@example.com"
IDENTITY = {"method": "signed_in_account", "note": "asked from the account settings page"}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]

    def post(self, key: str | None, body: dict[str, object], **headers: str) -> httpx.Response:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.post(f"{self.url}/v1/requests", json=body, headers=headers, timeout=10)

    def get(self, key: str | None, reference: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.get(f"{self.url}/v1/requests/{reference}", headers=headers, timeout=10)


@contextmanager
def served(d: Deployment) -> Iterator[Server]:
    """The intake API of ``d``, as README starts it: uvicorn on a loopback port, over HTTP."""
    port = free_port()
    log_path = d.dir / "uvicorn.log"
    log = log_path.open("w")
    env = {**os.environ, **{k: v for k, v in d.env.items() if v is not None}}
    for name, value in d.env.items():
        if value is None:
            env.pop(name, None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        # A file, not a pipe: nobody reads a pipe while tests run, and once its 64 KB buffer
        # is full of log lines the server blocks on its next write and stops answering.
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{server.url}/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = log_path.read_text(errors="replace")
                raise AssertionError(f"uvicorn did not start:\n{output}") from None
            time.sleep(0.2)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def api(demo: Deployment, smtp_inbox: Inbox) -> Iterator[Server]:
    demo.write_policy(with_mail_server(DEMO_POLICY, smtp_inbox.port))
    with served(demo) as server:
        yield server


def new_key(d: Deployment, name: str = "shop") -> str:
    result = d.run("api-key", "create", "--name", name, "--by", OFFICER, "--execute")
    assert result.exit_code == 0, result.output
    keys = [line for line in result.output.splitlines() if line.startswith("pdk_")]
    assert len(keys) == 1, result.output
    return keys[0]


def test_api_key_create_prints_the_key_once_and_stores_only_its_hash(demo: Deployment) -> None:
    dry = demo.run("api-key", "create", "--name", "shop", "--by", OFFICER)
    assert dry.exit_code == 0 and "pdk_" not in dry.output and "Would create" in dry.output
    key = new_key(demo)
    with demo.session() as s:
        row = s.scalars(select(ApiKey)).one()
        assert row.key_hash == api_key_digest(key) and key not in (row.key_prefix, row.key_hash)
        assert key.startswith(row.key_prefix)
    with demo.session() as s:
        runs = s.scalars(select(JobRun).where(JobRun.job == "api-key create")).all()
        assert runs and all(key not in str(r.summary) + str(r.arguments) for r in runs)
    listed = demo.run("api-key", "list")
    assert "shop" in listed.output and "active" in listed.output and key not in listed.output
    again = demo.run("api-key", "create", "--name", "shop", "--by", OFFICER, "--execute")
    assert again.exit_code == 2 and "already exists" in again.output
    bad = demo.run("api-key", "create", "--name", "Shop App!", "--by", OFFICER, "--execute")
    assert bad.exit_code == 2 and "must be" in bad.output


def test_without_a_key_or_with_a_revoked_key_the_api_refuses(demo: Deployment, api: Server) -> None:
    body = {"kind": "access", "subject_id": "21", "identity_check": IDENTITY}
    assert api.post(None, body).status_code == 401
    assert api.post("pdk_not-a-real-key", body).status_code == 401
    key = new_key(demo)
    revoked = demo.run("api-key", "revoke", "shop", "--by", OFFICER, "--execute")
    assert revoked.exit_code == 0, revoked.output
    refused = api.post(key, body)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert "REVOKED" in demo.run("api-key", "list").output
    with demo.session() as s:
        assert list_dsar_requests(s) == []


def test_a_valid_request_is_logged_and_appears_where_the_dashboard_looks(
    demo: Deployment, api: Server, smtp_inbox: Inbox
) -> None:
    key = new_key(demo)
    answer = api.post(
        key,
        {"kind": "erasure", "email": demo.app_rows("users", "id = 21")[0]["email"],
         "identity_check": IDENTITY},
        **{"User-Agent": "shop-backend/2.1"},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "pending" and created["due_at"].endswith("+00:00")
    assert created["jurisdiction"] == "gdpr"  # none declared: GDPR's calendar month
    with demo.session() as s:
        [request] = list_dsar_requests(s)
        assert request.reference == created["reference"] and request.subject_id == "21"
        assert request.requested_by == "api:shop" and request.channel == "api"
        assert request.identity_method == "signed_in_account"
        assert request.client_ip == "127.0.0.1" and request.user_agent == "shop-backend/2.1"
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "dsar.submitted")).one()
        assert event.actor == "api:shop"
        assert "127.0.0.1" not in str(event.details) and "shop-backend" not in str(event.details)
    # The subject is told at once: the acknowledgement names the reference and due date.
    [ack] = smtp_inbox.messages
    assert ack["To"] == demo.app_rows("users", "id = 21")[0]["email"]
    assert (
        created["reference"] in ack["Subject"]
        and created["due_at"][:10] in ack.get_body(("plain",)).get_content()
    )
    status = api.get(key, created["reference"])
    assert status.status_code == 200 and status.json()["status"] == "pending"
    other = new_key(demo, "crm")
    assert api.get(other, created["reference"]).status_code == 404


def test_a_second_request_within_a_day_gets_429_with_retry_after(
    demo: Deployment, api: Server
) -> None:
    key = new_key(demo)
    body = {"kind": "access", "subject_id": "21", "identity_check": IDENTITY}
    unknown = api.post(key, {**body, "jurisdiction": "hipaa"})  # bad input before any limit
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "jurisdiction must be one of gdpr, got 'hipaa'"
    first = api.post(key, body)
    assert first.status_code == 201
    with demo.session() as s:  # closed at once: no open request, yet within the day
        review_dsar(
            s, first.json()["reference"], "reject", reviewer=DPO, four_eyes=True,
            reason="Asked by mistake", execute=True,
        )  # fmt: skip
    again = api.post(key, body)
    assert again.status_code == 429
    assert 86_000 < int(again.headers["Retry-After"]) <= 86_400
    # A malformed body is still the caller's bug (422), not a flood, within the day too.
    bad_method = api.post(key, {**body, "identity_check": {**IDENTITY, "method": "psychic"}})
    assert bad_method.status_code == 422, bad_method.text
    assert "identity check method must be one of" in bad_method.json()["detail"]
    # Another kind, or another subject, is a new request.
    assert api.post(key, {**body, "kind": "erasure"}).status_code == 201
    assert api.post(key, {**body, "subject_id": "22"}).status_code == 201


def test_an_open_request_answers_409_before_the_daily_limit_naming_it_only_to_its_key(
    demo: Deployment, api: Server
) -> None:
    shop, crm = new_key(demo, "shop"), new_key(demo, "crm")
    body = {"kind": "erasure", "subject_id": 23, "identity_check": IDENTITY}  # a JSON number
    created = api.post(shop, body)
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]

    again = api.post(shop, {**body, "subject_id": "23"})  # within the day, and still open
    assert again.status_code == 409
    assert again.json()["reference"] == reference
    assert reference in again.json()["detail"]

    other = api.post(crm, body)  # another caller learns only that one is open
    assert other.status_code == 409
    assert other.json() == {"detail": "an erasure request for this subject is already open"}
    assert "pending" not in other.text and reference not in other.text
    with demo.session() as s:
        assert [r.reference for r in list_dsar_requests(s)] == [reference]


def test_subject_id_is_a_string_or_a_whole_number_nothing_else(
    demo: Deployment, api: Server
) -> None:
    key = new_key(demo)
    for bad in (True, 23.5, [23], {"id": 23}):
        refused = api.post(key, {"kind": "access", "subject_id": bad, "identity_check": IDENTITY})
        assert refused.status_code == 422, (bad, refused.text)
    with demo.session() as s:
        assert list_dsar_requests(s) == []
    number = api.post(key, {"kind": "access", "subject_id": 24, "identity_check": IDENTITY})
    assert number.status_code == 201, number.text


def test_bad_requests_say_what_is_wrong_and_log_nothing(demo: Deployment, api: Server) -> None:
    key = new_key(demo)
    no_check = api.post(key, {"kind": "access", "subject_id": "21"})
    assert no_check.status_code == 422
    wrong = api.post(
        key, {"kind": "access", "subject_id": "21", "identity_check": {"method": "vibes"}}
    )
    assert wrong.status_code == 422 and "identity check method must be one of" in wrong.text
    other = api.post(
        key, {"kind": "access", "subject_id": "21", "identity_check": {"method": "other"}}
    )
    assert other.status_code == 422 and "needs a note" in other.text
    unknown = api.post(key, {"kind": "access", "subject_id": "999999", "identity_check": IDENTITY})
    assert unknown.status_code == 404
    assert api.get(key, "not-a-reference").status_code == 422
    with demo.session() as s:
        assert list_dsar_requests(s) == []
    docs = httpx.get(f"{api.url}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_an_open_request_older_than_a_day_is_named_not_duplicated(demo: Deployment) -> None:
    from datetime import timedelta

    from compliance.dsar.api_keys import authenticate
    from compliance.dsar.intake import AlreadyOpen, submit_from_api
    from compliance.store.models import utcnow

    key_text = new_key(demo)
    policy = demo.policy()
    args = dict(
        kind="access", subject_id="21", email=None, identity_method="id_document",
        identity_note="passport seen", client_ip=None, user_agent=None,
    )  # fmt: skip
    with demo.session() as s:
        key = authenticate(s, key_text)
        first = submit_from_api(s, policy, demo.app_engine, key=key, now=utcnow(), **args)
        with pytest.raises(AlreadyOpen) as refused:
            submit_from_api(
                s, policy, demo.app_engine, key=key, now=utcnow() + timedelta(hours=25), **args
            )
        assert refused.value.reference == first.request.reference
        assert len(list_dsar_requests(s)) == 1


def test_a_key_walking_unknown_ids_gets_404s_then_429_and_the_limit_is_audited(
    demo: Deployment, api: Server
) -> None:
    shop, crm = new_key(demo, "shop"), new_key(demo, "crm")
    body = {"kind": "access", "identity_check": IDENTITY}
    unknown = api.post(shop, {**body, "subject_id": "900000"})
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "no data subject with id '900000' in users"}
    with demo.session() as s:  # as if 18 more unknown ids came this minute
        s.execute(update(ApiKey).where(ApiKey.name == "shop").values(unknown_subjects=19))
        s.commit()
    assert api.post(shop, {**body, "subject_id": "900001"}).status_code == 404  # the 20th
    assert api.post(shop, {**body, "email": "nobody@example.com"}).status_code == 429
    # Past the limit a known subject is refused too: a 201 would tell it apart.
    refused = api.post(shop, {**body, "subject_id": "21"})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json() == {
        "detail": "this API key asked about 20 unknown subjects within a minute; try again in "
        f"{refused.headers['Retry-After']} second(s)"
    }
    assert api.post(crm, {**body, "subject_id": "21"}).status_code == 201  # per key
    with demo.session() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "api_key.unknown_subjects_limited")
        ).all()
        assert [(e.actor, e.target_id, e.details) for e in events] == [
            ("api:shop", "shop", {"unknown_subjects": 20, "window_seconds": 60})
        ]
        assert [r.requested_by for r in list_dsar_requests(s)] == ["api:crm"]


def test_the_unknown_subject_limit_lasts_one_minute(demo: Deployment) -> None:
    from datetime import timedelta

    from compliance.dsar.api_keys import authenticate
    from compliance.dsar.intake import TooSoon, submit_from_api
    from compliance.errors import NotFound
    from compliance.store.models import utcnow

    key_text = new_key(demo)
    policy = demo.policy()
    start = utcnow()

    def ask(subject_id: str, seconds: float) -> str:
        args = dict(
            kind="access", email=None, identity_method="id_document", identity_note="passport",
            client_ip=None, user_agent=None,
        )  # fmt: skip
        with demo.session() as s:
            key = authenticate(s, key_text)
            try:
                submit_from_api(
                    s, policy, demo.app_engine, key=key, subject_id=subject_id,
                    now=start + timedelta(seconds=seconds), **args,
                )  # fmt: skip
            except NotFound:
                return "404"
            except TooSoon as exc:
                return f"429 {exc.retry_after}"
            return "201"

    # 19 misses, then a minute's pause: the window starts again, 20 more are 404.
    assert {ask(str(900_000 + n), n) for n in range(19)} == {"404"}
    assert {ask(str(900_100 + n), 61 + n / 10) for n in range(20)} == {"404"}
    assert ask("21", 70) == "429 51"  # the window began at 61s and lasts until 121s
    assert ask("21", 122) == "201"
