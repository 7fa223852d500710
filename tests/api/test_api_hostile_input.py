"""Any value, any size, any encoding sent to the intake API: a 4xx that names the problem.

Over real HTTP against uvicorn: a host application (or anyone who can reach the port) may
send anything. The answer is never a 500 or a traceback, and nothing is logged or changed.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from compliance.dsar.requests import KINDS
from compliance.store.models import AuditEvent, DsarRequest, ErasureTask
from tests.api.test_intake_api import IDENTITY, Server, api, new_key  # noqa: F401
from tests.api.test_intake_api import smtp_inbox as smtp_inbox  # the fixture
from tests.conftest import Deployment

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "1e3", "-1", "99999999999999999999999", "../../etc/passwd",
                     "'; DROP TABLE dsar_requests; --", "=HYPERLINK(\"http://x\")", "١٢",
                     "x" * 5000]),
)  # fmt: skip
NOT_AN_ID = HOSTILE_TEXT.filter(lambda s: not s.strip().lstrip("+").isdigit())
NO_SUCH_ID = st.integers().filter(lambda n: n < 0 or n > 10**9)
BAD_METHOD = HOSTILE_TEXT.filter(lambda s: s not in ("signed_in_account", "id_document", "other"))
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def bad_body(draw: st.DrawFn) -> bytes:
    """A request body with at least one thing wrong, or not a request body at all."""
    good: dict[str, object] = {"kind": "access", "subject_id": "21", "identity_check": IDENTITY}
    flaw = draw(st.sampled_from(["subject", "email", "kind", "method", "note", "shape", "bytes"]))
    if flaw == "bytes":
        return draw(st.binary(max_size=300))
    if flaw == "shape":
        return json.dumps(draw(ANY_JSON)).encode()
    body = dict(good)
    if flaw == "subject":
        # A whole number is a fine key: only one no subject has is a flaw (176 is a demo user).
        body["subject_id"] = draw(NOT_AN_ID | NO_SUCH_ID | st.lists(st.integers(), max_size=2))
    elif flaw == "email":
        body.pop("subject_id")
        body["email"] = draw(HOSTILE_TEXT.filter(lambda s: "@" not in s))
    elif flaw == "kind":
        body["kind"] = draw(HOSTILE_TEXT.filter(lambda s: s not in KINDS))
    elif flaw == "method":
        body["identity_check"] = {"method": draw(BAD_METHOD), "note": "x"}
    else:
        body["identity_check"] = {
            "method": "other",
            "note": draw(st.sampled_from(["", " ", "x" * 2001])),
        }
    return json.dumps(body).encode()


def changed(d: Deployment) -> tuple[int, int, int]:
    with d.session() as s:
        return (
            s.scalar(select(func.count()).select_from(DsarRequest)) or 0,
            s.scalar(select(func.count()).select_from(ErasureTask)) or 0,
            s.scalar(select(func.count()).where(AuditEvent.action.like("dsar.%"))) or 0,
        )


def one_clear_answer(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    detail = response.json()["detail"]
    assert detail, response.text[:300]


@pytest.fixture
def keyed(demo: Deployment, api: Server) -> tuple[Deployment, Server, str]:  # noqa: F811
    return demo, api, new_key(demo)


@settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(body=bad_body(), reference=HOSTILE_TEXT, callback=st.binary(max_size=200))
# JSON that Python reads but cannot write back: once answered with a 500.
@example(body=b"Infinity", reference="", callback=b"")
@example(body=b'{"kind": "access", "subject_id": NaN}', reference="", callback=b"")
# A lone surrogate, quoted back in the error, could not be written as UTF-8: once a 500.
@example(
    body=b'{"kind": "access", "subject_id": "21", "identity_check": {"method": "x\\ud800"}}',
    reference="",
    callback=b"",
)
def test_anything_sent_to_the_api_gets_a_4xx_naming_it_and_changes_nothing(
    keyed: tuple[Deployment, Server, str], body: bytes, reference: str, callback: bytes
) -> None:
    d, server, key = keyed
    before = changed(d)
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    one_clear_answer(
        httpx.post(f"{server.url}/v1/requests", content=body, headers=auth, timeout=10)
    )
    if reference.strip("/"):
        path = quote(reference, safe="")
        one_clear_answer(httpx.get(f"{server.url}/v1/requests/{path}", headers=auth, timeout=10))
    one_clear_answer(
        httpx.post(f"{server.url}/v1/tasks/callback", content=callback, timeout=10,
                   headers={"X-Privacy-Desk-Signature": callback[:40].hex()})
    )  # fmt: skip
    one_clear_answer(
        httpx.post(f"{server.url}/v1/requests", content=body, timeout=10,
                   headers={"Authorization": f"Bearer {quote(reference[:100]) or '-'}"})
    )  # fmt: skip
    assert changed(d) == before


@st.composite
def hostile_callback(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A callback body (deep, huge, odd keys, any status) and signature headers of any shape."""
    from compliance.systems.webhook import signed_headers

    shape = draw(st.sampled_from(["deep", "huge", "document"]))
    if shape == "deep":
        depth = draw(st.integers(min_value=60, max_value=200_000))
        body = (b'{"idempotency_key": "k", "status": "done", "data": ' + b"[" * depth
                + b"]" * depth + b"}")  # fmt: skip
    elif shape == "huge":
        body = b'{"idempotency_key": ' + b"9" * draw(st.integers(1, 50_000)) + b"}"
    else:
        document = {"idempotency_key": draw(HOSTILE_TEXT | st.integers() | ANY_JSON),
                    "status": draw(ANY_JSON)}  # fmt: skip
        body = json.dumps(document).encode()
    key = draw(st.text(alphabet="abcdef0123456789-_", min_size=1, max_size=64))
    headers = draw(
        st.sampled_from([
            {},
            signed_headers(b"not-the-secret", body, key=key),
            {"X-Privacy-Desk-Timestamp": "1", "X-Privacy-Desk-Signature": "sha256=00"},
            {"X-Privacy-Desk-Timestamp": "９９", "X-Privacy-Desk-Signature": "v2=\u00e9"},
        ])
    )  # fmt: skip
    return body, headers


@settings(
    max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(callback=hostile_callback())
def test_any_callback_gets_a_4xx_and_changes_nothing(
    keyed: tuple[Deployment, Server, str], callback: tuple[bytes, dict[str, str]]
) -> None:
    """Deeply nested JSON once answered HTTP 500; nothing here is a task's genuine answer."""
    d, server, _ = keyed
    body, headers = callback
    before = changed(d)
    safe = {k: v.encode("utf-8") for k, v in headers.items()}  # as bytes: any octets go
    one_clear_answer(
        httpx.post(f"{server.url}/v1/tasks/callback", content=body, headers=safe, timeout=30)
    )
    assert changed(d) == before
