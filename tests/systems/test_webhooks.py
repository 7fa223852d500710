"""Webhook systems: signed requests to a real loopback service, retries, callbacks, crashes.

A record whose bucket reaches a webhook system is applied only when the service says done;
every request carries the task's idempotency key, the same on every resend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from compliance.deletion.apply import apply_deletions
from compliance.errors import InvalidInput
from compliance.storage import export_store
from compliance.store.models import AuditEvent, DeletionRecord, ErasureTask, utcnow
from compliance.systems.manual_tasks import retry_task
from compliance.systems.webhook import signed_headers
from compliance.systems.webhook_tasks import receive_callback
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.systems.test_systems import accept_everything
from tests.webhook_server import Service, webhook_service

SECRET = "test-helpdesk-secret"


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("HELPDESK_SECRET", SECRET)
    with webhook_service(SECRET.encode()) as running:
        yield running


def with_helpdesk(demo: Deployment, url: str, extra: str = "") -> Deployment:
    """closed_accounts also reaches the helpdesk, a webhook at ``url``."""
    demo.write_policy(
        DEMO_POLICY.replace(
            "[buckets.closed_accounts]\n", '[buckets.closed_accounts]\nsystems = ["helpdesk"]\n'
        )
        + f"""
[systems.helpdesk]
kind = "webhook"
url = "{url}"
secret_env = "HELPDESK_SECRET"
timeout_seconds = 2
{extra}
"""
    )
    accept_everything(demo, "closed_accounts")
    return demo


def apply(d: Deployment, at: timedelta = timedelta(0)):  # type: ignore[no-untyped-def]
    with d.session() as session:
        return apply_deletions(
            session, d.datamap(), actor="test-runner", execute=True, now=utcnow() + at
        )


def tasks(d: Deployment, system: str = "helpdesk") -> list[ErasureTask]:
    with d.session() as s:
        return list(s.scalars(select(ErasureTask).where(ErasureTask.system == system)))


def applied_count(d: Deployment) -> int:
    with d.session() as s:
        return (
            s.scalar(select(func.count()).where(DeletionRecord.deletion_applied_at.is_not(None)))
            or 0
        )


def test_a_service_that_fails_twice_gets_the_same_key_three_times_and_the_record_waits(
    demo: Deployment, service: Service
) -> None:
    d = with_helpdesk(demo, service.url + "/flaky")
    first = apply(d)
    n = first.due
    assert n > 0 and first.applied == 0 and first.waiting == n
    assert first.webhooks["retrying"] == n
    assert applied_count(d) == 0, "the application part is done, but the helpdesk is not"
    assert all(t.status == "pending" and t.attempts == 1 for t in tasks(d))
    assert all(t.last_error == "HTTP 503" for t in tasks(d))

    assert apply(d, timedelta(seconds=30)).webhooks.get("sent", 0) == 0, "backoff: not yet"
    apply(d, timedelta(seconds=61))  # second attempt, fails again
    assert all(t.attempts == 2 and t.status == "pending" for t in tasks(d))
    last = apply(d, timedelta(seconds=61 + 121))

    assert last.applied == n and applied_count(d) == n
    assert all(t.status == "done" and t.attempts == 3 for t in tasks(d))
    assert all(t.subject is None for t in tasks(d)), "the email is dropped once done"
    posts = [c for c in service.calls if c.path == "/flaky"]
    assert len(posts) == 3 * n
    assert all(c.signature_ok for c in posts)
    for key in {c.key for c in posts}:
        same = [c for c in posts if c.key == key]
        assert len(same) == 3, "every attempt carries the task's one idempotency key"
        body = same[0].body
        assert body is not None
        assert body["kind"] == "erasure" and body["idempotency_key"] == key
        assert body["reference"].startswith("DR-")
        assert "@" in body["subject"]["email"] and body["subject"]["id"]


def test_a_service_that_answers_later_finishes_the_record_through_a_signed_callback(
    demo: Deployment, service: Service
) -> None:
    d = with_helpdesk(demo, service.url + "/later")
    first = apply(d)
    assert first.applied == 0 and first.webhooks["accepted"] == first.due
    assert all(t.status == "sent" and t.accepted_at for t in tasks(d))
    assert apply(d, timedelta(hours=1)).webhooks.get("sent", 0) == 0, "accepted: never resent"

    task = tasks(d)[0]
    body = json.dumps({"idempotency_key": task.idempotency_key, "status": "done"}).encode()
    key = task.idempotency_key
    forged = signed_headers(b"wrong", body, key=key)
    with d.session() as s, pytest.raises(InvalidInput, match="callback refused: bad signature"):
        receive_callback(s, d.policy(), body, forged)
    stale = signed_headers(SECRET.encode(), body, key=key, now=utcnow().timestamp() - 3600)
    with d.session() as s, pytest.raises(InvalidInput, match="too old"):
        receive_callback(s, d.policy(), body, stale)
    assert tasks(d)[0].status == "sent"

    for t in tasks(d):
        body = json.dumps({"idempotency_key": t.idempotency_key, "status": "done"}).encode()
        with d.session() as s:
            signed = signed_headers(SECRET.encode(), body, key=t.idempotency_key)
            receive_callback(s, d.policy(), body, signed)
    assert applied_count(d) == first.due
    with d.session() as s:  # a replayed callback changes nothing
        again = receive_callback(s, d.policy(), body, signed)
        assert again.status == "done"
        done_events = s.scalar(select(func.count()).where(AuditEvent.action == "task.done"))
    assert done_events == first.due


def test_an_accepted_task_is_polled_at_the_status_url_until_done(
    demo: Deployment, service: Service
) -> None:
    d = with_helpdesk(
        demo, service.url + "/later", extra=f'status_url = "{service.url}/status/{{key}}"'
    )
    first = apply(d)
    assert first.webhooks["accepted"] == first.due
    apply(d, timedelta(minutes=2))  # polled: still working
    assert applied_count(d) == 0
    polls = [c for c in service.calls if c.method == "GET"]
    assert polls and all(c.signature_ok for c in polls)
    service.finished.update(t.idempotency_key for t in tasks(d))
    apply(d, timedelta(minutes=10))
    assert applied_count(d) == first.due
    assert all(t.status == "done" for t in tasks(d))


def test_an_answer_with_a_bad_signature_is_refused_and_an_officer_retries_the_failed_task(
    demo: Deployment, service: Service
) -> None:
    d = with_helpdesk(demo, service.url + "/forged", extra="max_attempts = 2")
    apply(d)
    result = apply(d, timedelta(minutes=5))
    assert result.failed == result.due and result.applied == 0
    failed = tasks(d)
    assert all(t.status == "failed" and t.attempts == 2 for t in failed)
    assert all(t.last_error == "answer refused: bad signature" for t in failed)
    with d.session() as s:
        errors = set(s.scalars(select(DeletionRecord.deletion_error)))
    assert errors == {"helpdesk: answer refused: bad signature"}
    assert apply(d, timedelta(hours=2)).webhooks.get("sent", 0) == 0, "failed waits for a person"

    d.write_policy(d.policy_path.read_text().replace("/forged", "/done"))
    with d.session() as s:
        retry_task(s, failed[0].id, actor=person("dpo@example.com"), execute=True)
    again = apply(d, timedelta(hours=2))
    assert again.applied == 1
    assert [t.status for t in tasks(d)].count("done") == 1


def test_a_run_killed_after_sending_resends_with_the_same_key_and_finishes_once(
    demo: Deployment, service: Service
) -> None:
    d = with_helpdesk(demo, service.url + "/done")
    job = d.run_process(
        "apply-deletions", "--execute",
        env={"COMPLIANCE_FAILPOINT": "tasks.after_send:1", "HELPDESK_SECRET": SECRET},
    )  # fmt: skip
    job.communicate(timeout=120)
    assert job.returncode == -9, "the failpoint killed the job right after the first send"
    first_key = service.calls[0].key
    lost = next(t for t in tasks(d) if t.idempotency_key == first_key)
    assert lost.status == "sent" and lost.accepted_at is None

    soon = apply(d)  # at once: the lost send may still be in flight, so it is not resent
    assert [c.key for c in service.calls].count(first_key) == 1
    later = apply(d, timedelta(seconds=30))  # after the lease: resent with the same key

    assert soon.applied + later.applied == soon.due
    assert [c.key for c in service.calls].count(first_key) == 2
    assert len({c.key for c in service.calls}) == soon.due, "one key per task, no new ones"
    assert all(t.status == "done" for t in tasks(d))
    with d.session() as s:
        done = s.scalar(select(func.count()).where(AuditEvent.action == "task.done"))
    assert done == soon.due, "each task finished exactly once"


def test_an_access_request_waits_for_every_system_and_its_zip_has_a_folder_for_each(
    demo: Deployment, service: Service
) -> None:
    import hashlib
    import zipfile

    from compliance.dsar.decisions import review_dsar
    from compliance.dsar.processing import process_dsar_requests
    from compliance.dsar.requests import submit
    from compliance.store.models import DsarRequest
    from compliance.systems.manual_tasks import confirm_task

    demo.write_policy(
        DEMO_POLICY.replace("systems = []  ", 'systems = ["helpdesk", "newsletter"]  ')
        + f"""
[systems.helpdesk]
kind = "webhook"
url = "{service.url}/done"
secret_env = "HELPDESK_SECRET"
"""
    )
    policy = demo.policy()
    assert policy.dsar_systems == ("helpdesk", "newsletter")
    with demo.session() as s:
        request = submit(s, policy, demo.app_engine, kind="access", subject_id="42",
                         requested_by=person("support@example.com"),
                         execute=True).request  # fmt: skip
        reference, request_id = request.reference, request.id
        review_dsar(s, reference, "approve", reviewer=person("dpo@example.com"),
                    four_eyes=False, execute=True)  # fmt: skip
        first = process_dsar_requests(s, demo.datamap(), actor="worker", execute=True)
    assert first.waiting == [reference] and not first.completed
    (call,) = [c for c in service.calls if c.path == "/done"]
    assert call.body is not None and call.body["kind"] == "access"
    assert call.body["reference"] == reference
    with demo.session() as s:
        manual = s.scalars(select(ErasureTask).where(ErasureTask.system == "newsletter")).one()
        assert manual.status == "pending" and manual.action == "access"
        with pytest.raises(InvalidInput, match="needs the file"):
            confirm_task(s, manual.id, actor=person("dpo@example.com"), note="done", execute=True)
        confirm_task(
            s, manual.id, actor=person("dpo@example.com"), note="Exported from the tool",
            execute=True,
            upload=("subscriber.csv", b"email,list\nx@example.org,weekly\n"),
            store=export_store(policy),
        )  # fmt: skip
        second = process_dsar_requests(
            s, demo.datamap(), actor="worker", execute=True, now=utcnow() + timedelta(minutes=2)
        )
        assert second.ready == [reference] and second.exported == 1
        row = s.scalars(select(DsarRequest).where(DsarRequest.id == request_id)).one()
        assert row.status == "ready"
        statuses = {t.system: t.status for t in s.scalars(select(ErasureTask))}
    assert statuses == {
        "app_database": "done", "billing": "done", "helpdesk": "done", "newsletter": "done",
    }  # fmt: skip
    with zipfile.ZipFile(row.export_path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    assert "app_database/users.csv" in files
    assert json.loads(files["helpdesk/data.json"]) == service.data
    assert files["newsletter/subscriber.csv"] == b"email,list\nx@example.org,weekly\n"
    manifest = json.loads(files["manifest.json"])
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    assert all(hashlib.sha256(files[n]).hexdigest() == sha for n, sha in listed.items())


def test_the_helpdesk_stub_from_the_readme_speaks_the_contract() -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    from compliance.policy.systems import System
    from compliance.systems.webhook import poll, send
    from tests.conftest import ROOT

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HELPDESK_WEBHOOK_SECRET": SECRET}
    stub = subprocess.Popen(
        [sys.executable, "-m", "examples.helpdesk_stub", "--port", str(port), "--delay", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        system = System("helpdesk", "webhook", url=f"http://127.0.0.1:{port}/privacy",
                        secret_env="HELPDESK_WEBHOOK_SECRET", timeout_s=5,
                        status_url=f"http://127.0.0.1:{port}/privacy/{{key}}")  # fmt: skip
        subject = {"id": "7", "email": "a@example.org"}
        for _ in range(50):  # until it listens
            answer = send(system, {"kind": "erasure", "subject": subject},
                          idempotency_key="k1", secret=SECRET.encode())  # fmt: skip
            if answer.declared:
                break
            time.sleep(0.1)
        assert answer.status == "done"
        later = send(system, {"kind": "access", "subject": subject}, idempotency_key="k2",
                     secret=SECRET.encode())  # fmt: skip
        assert later.status == "accepted"
        ready = poll(system, reference="DSAR-1", idempotency_key="k2", secret=SECRET.encode())
        assert ready.status == "done" and ready.data["tickets"]
        forged = send(system, {"kind": "erasure"}, idempotency_key="k3", secret=b"wrong")
        assert forged.status == "failed" and not forged.declared
    finally:
        stub.terminate()
        stub.communicate(timeout=10)


@pytest.fixture
def answering_later(demo: Deployment, service: Service) -> Deployment:
    return with_helpdesk(demo, service.url + "/later")


@pytest.fixture
def api(answering_later: Deployment) -> Iterator[str]:
    """The intake API (uvicorn on a loopback port) over the deployment with the helpdesk."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import ROOT
    from tests.smtp_server import free_port

    port = free_port()
    env = {**os.environ, "HELPDESK_SECRET": SECRET}
    for name, value in answering_later.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port",
         str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("uvicorn did not start") from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.communicate(timeout=10)


def test_the_callback_reaches_the_intake_api_over_http(
    answering_later: Deployment,
    service: Service,
    api: str,
) -> None:
    import httpx

    d = answering_later
    first = apply(d)
    assert first.webhooks["accepted"] == first.due
    task = tasks(d)[0]
    body = json.dumps({"idempotency_key": task.idempotency_key, "status": "done"}).encode()
    url = f"{api}/v1/tasks/callback"
    key = task.idempotency_key
    wrong = signed_headers(b"wrong", body, key=key)
    forged = httpx.post(url, content=body, headers=wrong, timeout=10)
    assert forged.status_code == 422 and "bad signature" in forged.json()["detail"]
    signed = signed_headers(SECRET.encode(), body, key=key)
    answer = httpx.post(url, content=body, headers=signed, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "done"}
    replay = httpx.post(url, content=body, headers=signed, timeout=10)
    assert replay.status_code == 200, "a replayed callback changes nothing"
    with d.session() as s:
        record = s.get(DeletionRecord, task.deletion_record_id)
        assert record is not None and record.deletion_applied_at is not None
        done = s.scalar(select(func.count()).where(AuditEvent.action == "task.done"))
    assert done == 1


# ---------------------------------------------------------------- webhooks cannot be steered


def test_a_redirect_is_a_failed_attempt_and_the_other_server_receives_nothing(
    demo: Deployment, service: Service
) -> None:
    """A 302 once made the job send the signed request, key and all, wherever it pointed."""
    with webhook_service(SECRET.encode()) as elsewhere:
        service.redirect_to = f"{elsewhere.url}/done"
        d = with_helpdesk(demo, service.url + "/redirect")
        result = apply(d)
        assert result.due > 0 and result.applied == 0
        assert result.webhooks["retrying"] == result.due
        assert elsewhere.calls == [], "the redirect target received nothing"
    assert len([c for c in service.calls if c.path == "/redirect"]) == result.due
    for task in tasks(d):
        assert task.status == "pending" and task.attempts == 1
        assert task.last_error is not None
        assert task.last_error.startswith("HTTP 302 redirect to 'http://127.0.0.1:")
        assert task.last_error.endswith("refused (redirects are never followed)")
    assert applied_count(d) == 0


def test_an_answer_captured_for_one_task_is_refused_for_every_other(
    demo: Deployment, service: Service
) -> None:
    """One captured ``{"status": "done"}`` once marked other tasks done within 5 minutes."""
    d = with_helpdesk(demo, service.url + "/replay")
    result = apply(d)
    assert result.due >= 2
    assert service.captured is not None, "the first task's genuine answer was captured"
    by_status: dict[str, list[ErasureTask]] = {}
    for task in tasks(d):
        by_status.setdefault(task.status, []).append(task)
    assert len(by_status["done"]) == 1, "only the task the answer was signed for"
    replayed = by_status["pending"]
    assert len(replayed) == result.due - 1
    assert {t.last_error for t in replayed} == {"answer refused: bad signature"}
    assert applied_count(d) == 1


def test_an_unversioned_or_other_tasks_signature_is_refused_on_a_callback(
    answering_later: Deployment,
) -> None:
    import hashlib
    import hmac

    d = answering_later
    apply(d)
    first, second = tasks(d)[:2]
    body = json.dumps({"idempotency_key": first.idempotency_key, "status": "done"}).encode()
    timestamp = str(int(utcnow().timestamp()))
    old = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    unversioned = {"X-Privacy-Desk-Timestamp": timestamp,
                   "X-Privacy-Desk-Signature": "sha256=" + old.hexdigest()}  # fmt: skip
    for headers, message in (
        (unversioned, "the signature is not v2="),
        (signed_headers(SECRET.encode(), body, key=second.idempotency_key), "bad signature"),
    ):
        with d.session() as s, pytest.raises(InvalidInput, match=message):
            receive_callback(s, d.policy(), body, headers)
    assert {t.status for t in tasks(d)} == {"sent"}


@pytest.mark.parametrize(
    ("url", "demo_mode", "message"),
    [
        ("http://helpdesk.example.com/privacy", False, "must be https://"),
        ("https://trusted.example.com@evil.example/x", True, "user name or password"),
        ("ftp://helpdesk.example.com/x", True, "is not an absolute http:// or https:// URL"),
        ("https:///privacy", True, "has no host"),
        ("https://help desk.example.com/", True, "holds a space or a control character"),
        ("https://{key}.example.com/", True, "has a placeholder in its host"),
        ("https://helpdesk.example.com:99999/", True, "host or port cannot be read"),
    ],
)  # fmt: skip
def test_a_webhook_url_is_checked_when_the_policy_loads(
    url: str, demo_mode: bool, message: str
) -> None:
    import tomllib

    from compliance.errors import ConfigError
    from compliance.policy.loader import parse_policy

    data = tomllib.loads(DEMO_POLICY)
    data["dashboard"]["demo_mode"] = demo_mode
    data["systems"]["helpdesk"] = {"kind": "webhook", "url": url, "secret_env": "HELPDESK"}
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        parse_policy(data, env={"HELPDESK": "x"})
    assert str(refused.value).startswith("systems.helpdesk.url: ")


@pytest.mark.parametrize(
    "url",
    ["https://helpdesk.example.com/privacy", "http://127.0.0.1:8765/privacy",
     "http://localhost/x", "http://[::1]:80/x"],
)  # fmt: skip
def test_https_or_loopback_webhooks_load_outside_demo_mode(url: str) -> None:
    import tomllib

    from compliance.policy.loader import parse_policy

    data = tomllib.loads(DEMO_POLICY)
    data["dashboard"]["demo_mode"] = False
    data["systems"]["helpdesk"] = {"kind": "webhook", "url": url, "secret_env": "HELPDESK"}
    assert parse_policy(data, env={"HELPDESK": "x"}).systems["helpdesk"].url == url
