"""The webhook contract: signed, timestamped JSON both ways, one idempotency key per task.

Request (POST to the system's ``url``)::

    Content-Type: application/json
    Idempotency-Key: <the task's key; the same on every resend of that task>
    X-Privacy-Desk-Timestamp: <unix seconds>
    X-Privacy-Desk-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

    {"kind": "erasure" | "access", "reference": "...", "idempotency_key": "...",
     "subject": {"id": "...", "email": "..."}}

Answers, signed the same way by the service: a JSON object whose ``status`` is one of
``WireStatus``: done (for access with ``"data"``), or accepted to finish later through a
callback or the status URL. Anything else (an error status, a bad or stale signature, no
answer) is a failed attempt, retried with exponential backoff. Only the standard library
is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from compliance.errors import ConfigError
from compliance.policy.systems import System

TIMESTAMP_HEADER = "X-Privacy-Desk-Timestamp"
SIGNATURE_HEADER = "X-Privacy-Desk-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: A signed message older (or newer) than this is refused, so a captured one cannot be replayed.
TOLERANCE_S = 300
MAX_ANSWER_BYTES = 20 * 1024 * 1024


class WireStatus(StrEnum):
    """A service's answer on the wire (the protocol's words, not a stored state)."""

    DONE = "done"
    ACCEPTED = "accepted"  # the service finishes later: a callback, or the status URL
    FAILED = "failed"


class SignatureError(Exception):
    """A message whose signature or timestamp does not check out."""


def secret_for(system: System, env: Mapping[str, str] | None = None) -> bytes:
    """The system's signing secret, from the environment only (never the policy file)."""
    env = os.environ if env is None else env
    assert system.secret_env is not None
    value = env.get(system.secret_env)
    if not value:
        raise ConfigError(
            f"systems.{system.name}.secret_env: the environment variable {system.secret_env} "
            "is not set (it holds the webhook's signing secret)"
        )
    return value.encode("utf-8")


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> None:
    """Raise SignatureError unless ``body`` was signed with ``secret`` within the tolerance."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or not given:
        raise SignatureError("the answer is not signed")
    moment = now if now is not None else time.time()
    if abs(moment - int(timestamp)) > TOLERANCE_S:
        raise SignatureError("the signature's timestamp is too old or in the future")
    if not hmac.compare_digest(signature(secret, timestamp, body), given):
        raise SignatureError("bad signature")


@dataclass(frozen=True)
class Answer:
    """A verified answer: ``status`` is done, accepted or failed (with ``error``)."""

    status: WireStatus
    data: Any = None
    error: str | None = None
    #: True when the service itself said so in a signed answer (not a transport failure).
    declared: bool = True


def parse_answer(body: bytes) -> Answer:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Answer(WireStatus.FAILED, error="the answer is not JSON", declared=False)
    if not isinstance(document, dict):
        return Answer(WireStatus.FAILED, error="the answer is not a JSON object", declared=False)
    status = document.get("status")
    if status in (WireStatus.DONE, WireStatus.ACCEPTED):
        return Answer(WireStatus(status), data=document.get("data"))
    if status == WireStatus.FAILED:
        return Answer(
            WireStatus.FAILED, error=str(document.get("error") or "the service reported failure")
        )
    return Answer(WireStatus.FAILED, error=f"unknown status {status!r} in the answer")


def _call(request: urllib.request.Request, secret: bytes, timeout: float) -> tuple[int, Answer]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
            body = response.read(MAX_ANSWER_BYTES + 1)
            headers = dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, Answer(WireStatus.FAILED, error=f"HTTP {exc.code}", declared=False)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, Answer(WireStatus.FAILED, error=f"no answer: {reason}"[:300], declared=False)
    if len(body) > MAX_ANSWER_BYTES:
        return status, Answer(
            WireStatus.FAILED, error="the answer is larger than 20 MB", declared=False
        )
    try:
        verify(secret, headers, body)
    except SignatureError as exc:
        return status, Answer(WireStatus.FAILED, error=f"answer refused: {exc}", declared=False)
    answer = parse_answer(body)
    if status == 202 and answer.status == WireStatus.DONE:
        return status, Answer(WireStatus.ACCEPTED)
    return status, answer


def send(
    system: System,
    payload: Mapping[str, Any],
    *,
    idempotency_key: str,
    secret: bytes,
) -> Answer:
    """POST one signed request; return the verified answer (failures are answers too)."""
    assert system.url is not None
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: idempotency_key,
        **signed_headers(secret, body),
    }
    request = urllib.request.Request(system.url, data=body, headers=headers, method="POST")
    return _call(request, secret, system.timeout_s)[1]


def poll(system: System, *, reference: str, idempotency_key: str, secret: bytes) -> Answer:
    """GET the status URL of an accepted task (signed over the idempotency key)."""
    assert system.status_url is not None
    url = system.status_url.replace("{reference}", reference).replace("{key}", idempotency_key)
    signed = signed_headers(secret, idempotency_key.encode())
    headers = {IDEMPOTENCY_HEADER: idempotency_key, **signed}
    request = urllib.request.Request(url, headers=headers, method="GET")
    return _call(request, secret, system.timeout_s)[1]
