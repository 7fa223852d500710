"""The intake API (FastAPI): ``uvicorn api.app:app --host 127.0.0.1 --port 8502``.

A thin shell like ``jobs/`` and ``dashboard/``: it checks the bearer key, calls
``compliance.dsar.intake`` and maps domain errors to HTTP answers in one place. The policy
file and databases are the ones every other part uses (``COMPLIANCE_CONFIG`` and friends).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance import logs
from compliance.dsar.api_keys import ApiKeyInfo, KeyRefused, authenticate
from compliance.dsar.intake import AlreadyOpen, TooSoon, request_status, submit_from_api
from compliance.dsar.notices import send_notice
from compliance.dsar.objections import SCOPES
from compliance.dsar.rectification import MAX_CORRECTIONS, Correction
from compliance.dsar.requests import KINDS
from compliance.errors import (
    ComplianceError,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    Outage,
)
from compliance.policy.loader import load_policy
from compliance.policy.model import Policy
from compliance.store.engines import make_engine, session_factory
from compliance.store.states import DsarStatus
from compliance.systems.webhook_tasks import receive_callback


@dataclass
class Deployment:
    policy: Policy
    engine: Engine
    app_engine: Engine


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    logs.configure(logging.INFO)
    policy = load_policy()
    engine = make_engine(policy.database_url, what="compliance database")
    app_engine = make_engine(policy.app_database_url, what="application database")
    app.state.deployment = Deployment(policy, engine, app_engine)
    try:
        yield
    finally:
        engine.dispose()
        app_engine.dispose()


app = FastAPI(
    title="Privacy Desk intake API",
    version="1",
    summary="Log GDPR data subject requests from a host application; follow their status.",
    lifespan=lifespan,
    redirect_slashes=False,  # a machine client gets its answer, not a 307 to follow
)
bearer = HTTPBearer(auto_error=False, description="An API key from `python -m jobs api-key create`")


def deployment(request: Request) -> Deployment:
    found: Deployment = request.app.state.deployment
    return found


def db_session(dep: Annotated[Deployment, Depends(deployment)]) -> Iterator[Session]:
    with session_factory(dep.engine)() as session:
        yield session


def api_key(
    session: Annotated[Session, Depends(db_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKeyInfo:
    return authenticate(session, credentials.credentials if credentials else None)


class IdentityCheck(BaseModel):
    method: str = Field(description="One of [dsar] identity_methods in the policy file.")
    note: str | None = Field(None, max_length=2000, description="How it was checked.")


class CorrectionIn(BaseModel):
    column: str | None = Field(
        None, max_length=200, description="TABLE.COLUMN of the data map; none: in words."
    )
    value: str = Field(max_length=4000, description="The new value, or the correction in words.")


class NewRequest(BaseModel):
    kind: str = Field(max_length=20, description=f"One of {', '.join(KINDS)}.", examples=["access"])
    subject_id: Annotated[str, Field(max_length=255)] | StrictInt | None = Field(
        None, description="The subject's key: a JSON string or a whole number."
    )
    email: str | None = Field(None, max_length=320, description="Or the subject's email.")
    subject_type: str | None = Field(
        None,
        max_length=64,
        description="The kind of data subject ([subjects.NAME] in the policy); needed where "
        "the desk serves several.",
    )
    identity_check: IdentityCheck
    jurisdiction: str | None = Field(
        None,
        max_length=64,
        description="The law the request falls under ([jurisdictions] in the policy); by "
        "default the one the subject's country picks, else [dsar] default_jurisdiction.",
    )
    scope: str | None = Field(
        None, max_length=50, description=f"An objection's scope: one of {', '.join(SCOPES)}."
    )
    corrections: list[CorrectionIn] = Field(
        default_factory=list,
        max_length=MAX_CORRECTIONS,
        description="A rectification's corrections.",
    )


class RequestOut(BaseModel):
    reference: str = Field(examples=["DSAR-2026-000042"])
    kind: str
    status: str = Field(
        description=f"One of {', '.join(DsarStatus)}. ready: the export is built, the subject "
        "has not been sent the link yet; completed: the link email was sent (access) or the "
        "erasure applied",
        examples=["ready"],
    )
    jurisdiction: str = Field(description="The law the request falls under", examples=["gdpr"])
    requested_at: str = Field(description="ISO 8601 with UTC offset")
    due_at: str = Field(description="The (extended) deadline, ISO 8601 with UTC offset")
    extended: bool = False
    completed_at: str | None = Field(
        default=None, description="When the answer reached the subject"
    )


class Problem(BaseModel):
    detail: str
    reference: str | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@app.post(
    "/v1/requests",
    status_code=201,
    response_model=RequestOut,
    responses={
        401: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem},
        422: {"model": Problem},
        429: {"model": Problem},
    },
)
def create_request(
    body: NewRequest,
    request: Request,
    key: Annotated[ApiKeyInfo, Depends(api_key)],
    session: Annotated[Session, Depends(db_session)],
    dep: Annotated[Deployment, Depends(deployment)],
) -> RequestOut:
    """Log a data subject's request; due as its jurisdiction says (GDPR Art. 12(3): one
    calendar month after receipt).

    At most one open request per subject and kind (409; it names the open request to the
    key that logged it), and at most one new request per subject and kind in 24 hours (429
    with Retry-After). An open request answers 409 even within those 24 hours.
    """
    result = submit_from_api(
        session,
        dep.policy,
        dep.app_engine,
        key=key,
        kind=body.kind,
        subject_id=None if body.subject_id is None else str(body.subject_id),
        email=body.email,
        subject_type=body.subject_type,
        identity_method=body.identity_check.method,
        identity_note=body.identity_check.note,
        client_ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        jurisdiction=body.jurisdiction,
        scope=body.scope,
        corrections=[Correction(c.value, c.column) for c in body.corrections],
    )
    r = result.request
    try:  # Art. 12: tell the subject it arrived; a mail failure stays on the request, retryable
        send_notice(session, dep.policy, r.reference, "acknowledgement", actor=key.identity)
    except ComplianceError as exc:
        logs.log_event("api.acknowledgement_skipped", reference=r.reference, reason=str(exc))
    return RequestOut(
        reference=r.reference,
        kind=r.kind,
        status=r.status,
        jurisdiction=r.jurisdiction,
        requested_at=r.requested_at.isoformat(),
        due_at=r.due_at.isoformat(),
    )


@app.get(
    "/v1/requests/{reference:path}",  # a reference with a slash is not found, not redirected
    response_model=RequestOut,
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)
def get_request(
    reference: str,
    key: Annotated[ApiKeyInfo, Depends(api_key)],
    session: Annotated[Session, Depends(db_session)],
) -> RequestOut:
    """The status of a request this key logged (others are not found)."""
    status = request_status(session, reference, key=key)
    return RequestOut(
        reference=status.reference,
        kind=status.kind,
        status=status.status,
        jurisdiction=status.jurisdiction,
        requested_at=status.requested_at.isoformat(),
        due_at=status.due_at.isoformat(),
        extended=status.extended,
        completed_at=_iso(status.completed_at),
    )


class TaskOut(BaseModel):
    status: str = Field(description="The task's status after the callback: done or failed")


@app.post(
    "/v1/tasks/callback",
    response_model=TaskOut,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
)
async def task_callback(
    request: Request,
    session: Annotated[Session, Depends(db_session)],
    dep: Annotated[Deployment, Depends(deployment)],
) -> TaskOut:
    """A webhook system finishes a task it accepted earlier (the README's webhook contract).

    No API key: the body is signed with that system's secret (HMAC-SHA256, timestamped),
    and a bad or stale signature is refused with 422. A replay changes nothing.
    """
    body = await request.body()
    task = receive_callback(session, dep.policy, body, dict(request.headers.items()))
    return TaskOut(status=task.status)


@app.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers (an orchestrator restarts it when it stops answering)."""
    return {"status": "ok"}


@app.get("/readyz", include_in_schema=False)
def readyz(dep: Annotated[Deployment, Depends(deployment)]) -> JSONResponse:
    """Readiness: the compliance database answers; until it does, no request is sent here."""
    try:
        with dep.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@app.exception_handler(RequestValidationError)
def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Where the request is wrong and why, without echoing what was sent.

    FastAPI's own answer repeats each bad value, and a body of ``Infinity`` or ``NaN`` (which
    Python's JSON reader accepts) cannot be written back as JSON: it became a 500. What was
    sent may also be personal data, which an error answer has no need to repeat.
    """
    problems = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    logs.log_event("api.refused", status=422, path=request.url.path, error="RequestValidationError")
    return JSONResponse({"detail": problems}, status_code=422)


@app.exception_handler(ComplianceError)
def compliance_error(request: Request, exc: ComplianceError) -> JSONResponse:
    """Domain errors in one place: the message is safe to show, as on the command line."""
    headers: dict[str, str] = {}
    body: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, KeyRefused):
        status, headers = 401, {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, TooSoon):
        status, headers = 429, {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, AlreadyOpen):
        status = 409
        if exc.reference is not None:  # only to the key that logged it
            body["reference"] = exc.reference
    elif isinstance(exc, InvalidInput):
        status = 422
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, Conflict):
        status = 409
    elif isinstance(exc, Outage):
        status, headers = 503, {"Retry-After": "60"}
    elif isinstance(exc, ConfigError):
        status = 503
    else:
        status = 400
    logs.log_event("api.refused", status=status, path=request.url.path, error=type(exc).__name__)
    return JSONResponse(body, status_code=status, headers=headers)
