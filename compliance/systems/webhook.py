"""The webhook contract: signed, timestamped JSON both ways, each message bound to one task.

Request (POST to the system's ``url``)::

    Content-Type: application/json
    Idempotency-Key: <the task's key; the same on every resend of that task>
    X-Privacy-Desk-Timestamp: <unix seconds>
    X-Privacy-Desk-Signature: v2=<hex HMAC-SHA256(secret, "v2.<timestamp>.<key>." + body)>

    {"kind": "erasure" | "access" | "objection" | "restriction", "reference": "...",
     "idempotency_key": "...", "subject": {"id": "...", "email": "..."}}

plus what the kind needs (compliance.systems.payloads): an objection's ``scope``, a
restriction's ``{"start", "end"}``.

Answers, signed the same way by the service over the same task's key: a JSON object whose
``status`` is one of ``WireStatus``: done (for access with ``"data"``), or accepted to
finish later through a callback or the status URL. Because the key is signed, an answer
captured for one task is worthless for any other. Anything else (an error status, a
redirect, a bad, stale or unversioned signature, no answer) is a failed attempt, retried
with exponential backoff. Redirects are never followed: a 3xx could send the signed request,
key and all, anywhere. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from compliance.errors import ConfigError, quoted
from compliance.policy.systems import System

TIMESTAMP_HEADER = "X-Privacy-Desk-Timestamp"
SIGNATURE_HEADER = "X-Privacy-Desk-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: The signature scheme: ``v2`` signs the task's idempotency key with the timestamp and body.
VERSION = "v2"
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A signed message older (or newer) than this is refused, so a captured one cannot be replayed.
TOLERANCE_S = 300
MAX_ANSWER_BYTES = 20 * 1024 * 1024
#: Deeper JSON than this is refused: no export needs it, and Python's parsers recurse.
MAX_NESTING = 64


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


def signature(secret: bytes, timestamp: str, key: str, body: bytes) -> str:
    """``v2=<hex>``: the HMAC over the version, timestamp, task key and body."""
    message = b"".join((VERSION.encode(), b".", timestamp.encode(), b".", key.encode(), b".", body))
    return f"{VERSION}=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(
    secret: bytes, body: bytes, *, key: str, now: float | None = None
) -> dict[str, str]:
    """The timestamp and signature headers of a message about the task with ``key``."""
    timestamp = str(int(now if now is not None else time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, key, body)}


def check_key(key: object) -> str:
    """An idempotency key as this tool makes them: 1 to 64 printable ASCII characters."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise SignatureError("the idempotency key is not 1 to 64 letters, digits, '-' or '_'")
    return key


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key: str,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless ``body`` about task ``key`` was signed with ``secret`` lately.

    Only ``v2=`` signatures count: an unversioned one (``sha256=``, signed over the timestamp
    and body alone) could be replayed for another task, so it is refused by name.
    """
    check_key(key)
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not given:
        raise SignatureError("the answer is not signed")
    if not given.startswith(f"{VERSION}="):
        raise SignatureError(
            f"the signature is not {VERSION}= (unversioned signatures are refused: they are "
            "not bound to one task)"
        )
    moment = now if now is not None else time.time()
    if abs(moment - int(timestamp)) > TOLERANCE_S:
        raise SignatureError("the signature's timestamp is too old or in the future")
    expected = signature(secret, timestamp, key, body)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise SignatureError("bad signature")


@dataclass(frozen=True)
class Answer:
    """A verified answer: ``status`` is done, accepted or failed (with ``error``)."""

    status: WireStatus
    data: Any = None
    error: str | None = None
    #: True when the service itself said so in a signed answer (not a transport failure).
    declared: bool = True


def nesting(document: Any) -> int:
    """How deep lists and objects nest in a JSON document (counted without recursion)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                children = value.values() if isinstance(value, dict) else value
                stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_answer(body: bytes) -> Answer:
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a number of 4,300+ digits
        return Answer(WireStatus.FAILED, error="the answer is not JSON", declared=False)
    if nesting(document) > MAX_NESTING:
        error = f"the answer nests deeper than {MAX_NESTING} levels"
        return Answer(WireStatus.FAILED, error=error, declared=False)
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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the signed request anywhere the service says."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _call(
    request: urllib.request.Request, secret: bytes, key: str, timeout: float
) -> tuple[int, Answer]:
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
            body = response.read(MAX_ANSWER_BYTES + 1)
            headers = dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            where = quoted(exc.headers.get("Location", "") or "nowhere")
            error = f"HTTP {exc.code} redirect to {where} refused (redirects are never followed)"
            return exc.code, Answer(WireStatus.FAILED, error=error, declared=False)
        return exc.code, Answer(WireStatus.FAILED, error=f"HTTP {exc.code}", declared=False)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, Answer(WireStatus.FAILED, error=f"no answer: {reason}"[:300], declared=False)
    if 300 <= status < 400:  # a 3xx urllib did not treat as a redirect (304, 300 without Location)
        error = f"HTTP {status} refused (redirects are never followed)"
        return status, Answer(WireStatus.FAILED, error=error, declared=False)
    if len(body) > MAX_ANSWER_BYTES:
        return status, Answer(
            WireStatus.FAILED, error="the answer is larger than 20 MB", declared=False
        )
    try:
        verify(secret, headers, body, key=key)
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
        **signed_headers(secret, body, key=idempotency_key),
    }
    request = urllib.request.Request(system.url, data=body, headers=headers, method="POST")
    return _call(request, secret, idempotency_key, system.timeout_s)[1]


def poll(system: System, *, reference: str, idempotency_key: str, secret: bytes) -> Answer:
    """GET the status URL of an accepted task (signed over the key, with an empty body)."""
    assert system.status_url is not None
    url = system.status_url.replace("{reference}", reference).replace("{key}", idempotency_key)
    signed = signed_headers(secret, b"", key=idempotency_key)
    headers = {IDEMPOTENCY_HEADER: idempotency_key, **signed}
    request = urllib.request.Request(url, headers=headers, method="GET")
    return _call(request, secret, idempotency_key, system.timeout_s)[1]
