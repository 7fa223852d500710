"""Dashboard fixtures: a demo deployment with a review queue, and the app opened as someone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from compliance.clock import use_clock
from compliance.deletion.apply import apply_deletions
from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.exclusions import exclude_records
from compliance.deletion.purge import purge_compliance_data
from compliance.deletion.records import create_deletion_records
from compliance.deletion.review import review_batch
from compliance.demo.seed import seed_demo_workflow
from compliance.reports.review_queue import list_batches
from compliance.roles import identify
from compliance.store.models import DeletionRecord, utcnow
from tests.conftest import ROOT, Deployment

APP = ROOT / "dashboard" / "app.py"
OFFICER = "dpo@example.com"
MANAGER = "ceo@example.com"
SUPPORT = "support@example.com"


@pytest.fixture
def queue(demo: Deployment) -> Deployment:
    """The demo review queue (one batch accepted and applied, one pending in
    inactive_accounts) plus closed_accounts in pending batches of at most five records."""
    datamap = demo.datamap()
    with demo.session() as session:
        seed_demo_workflow(session, datamap, actor="test-runner")
        create_deletion_records(session, datamap, "closed_accounts", actor="jobs", execute=True)
        create_deletion_batches(
            session, datamap.policy, "closed_accounts", actor="jobs", execute=True, max_batch_size=5
        )
    return demo


def pending_batch(deployment: Deployment, bucket: str = "closed_accounts") -> int:
    """The oldest pending batch of the bucket, as an officer would pick it."""
    with deployment.session() as session:
        page = list_batches(session, bucket=bucket, status="pending", limit=1)
    return int(page.frame["batch_id"].iloc[0])


def decide_and_erase(deployment: Deployment, *, decided_at: datetime | None = None) -> int:
    """An officer's work on closed_accounts, ready for purge; returns the record she excluded.

    Now she keeps one record out of the oldest pending batch; at ``decided_at`` (by default
    now too) she accepts that batch, rejects the next one, and its records are erased.
    """
    policy = deployment.policy()
    officer = identify(policy, OFFICER)
    with deployment.session() as session:
        page = list_batches(session, bucket="closed_accounts", status="pending", limit=2)
        accepted, rejected = (int(b) for b in page.frame["batch_id"])
        excluded = session.scalars(
            select(DeletionRecord.id)
            .where(DeletionRecord.deletion_batch_id == accepted)
            .order_by(DeletionRecord.id)
        ).first()
        assert excluded is not None
        exclude_records(session, accepted, {excluded: "Customer in a dispute"}, actor=officer)
    moment = decided_at or utcnow()
    with use_clock(lambda: moment), deployment.session() as session:
        review_batch(session, accepted, "accept", reviewer=officer, policy=policy, execute=True)
        review_batch(
            session, rejected, "reject", reviewer=officer, reason="Test accounts", execute=True
        )
        apply_deletions(
            session, deployment.datamap(), actor="jobs", execute=True, bucket="closed_accounts"
        )
    return excluded


def purge(deployment: Deployment, *buckets: str, now: datetime | None = None) -> int:
    """Run purge-compliance-data on each bucket as the job would; return the records removed."""
    policy = deployment.policy()
    with deployment.session() as session:
        return sum(
            purge_compliance_data(
                session, policy, bucket, actor="jobs", execute=True, now=now
            ).records
            for bucket in buckets
        )


def button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    """The button with this label (buttons inside forms and dialogs included)."""
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def shown(markdown: str) -> str:
    """What a reader sees of a message's markdown source: the escapes that keep typed text
    plain (dashboard.widgets.plain) are not displayed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown.replace("\u2060", ""))


def texts(at: AppTest, kind: str) -> list[str]:
    """Every message of one kind on the page, as read: success, error, info, warning, title..."""
    return [shown(str(e.value)) for e in getattr(at, kind)]


OpenApp = Callable[..., AppTest]


#: The secret the tests' authenticating proxy shares with the dashboard.
PROXY_SECRET = "s3cret-shared-with-the-proxy-only-0123456789"
PROXY_SECRET_HEADER = "X-Privacy-Desk-Proxy-Secret"
#: Where a test puts the email its proxy vouches for: in the AppTest's own session state,
#: so two apps open in one test each keep their own person.
SIGNED_IN_AS = "_test_proxy_signed_in_as"


def demo_picker_offered(d: Deployment) -> bool:
    """The demo's user picker runs only on a desk whose database is SQLite
    (compliance.roles.demo_refusal); on PostgreSQL people sign in through the proxy."""
    return d.database_url.startswith("sqlite")


def proxy_headers(email: str) -> dict[str, str]:
    """What the authenticating proxy sends with every request for ``email``."""
    return {"X-Forwarded-Email": email, PROXY_SECRET_HEADER: PROXY_SECRET}


def behind_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTests in this test reach the dashboard through the authenticating proxy.

    AppTest has no browser connection, so the headers are handed to Streamlit the way its
    websocket handler does (a client context); the app reads them through
    ``st.context.headers`` as in production. An app with ``SIGNED_IN_AS`` in its session
    state is signed in as that email; one without sends no identity.
    """
    from types import SimpleNamespace

    import streamlit.runtime.context as st_context
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    monkeypatch.setenv("COMPLIANCE_PROXY_SECRET", PROXY_SECRET)

    def client() -> SimpleNamespace:
        ctx = get_script_run_ctx()
        email = ctx.session_state[SIGNED_IN_AS] if ctx and SIGNED_IN_AS in ctx.session_state else ""
        headers = list(proxy_headers(email).items()) if email else []
        return SimpleNamespace(headers=headers, cookies={}, remote_ip="127.0.0.1")

    monkeypatch.setattr(st_context, "_get_client_context", client)


def signed_in_app(d: Deployment, email: str, **query: str) -> AppTest:
    """The dashboard as ``email``, as a new tab would open it: on SQLite through the demo's
    ``?as=`` link, on PostgreSQL through the proxy (``behind_proxy`` must be in place)."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    if demo_picker_offered(d):
        at.query_params["as"] = email
    else:
        at.session_state[SIGNED_IN_AS] = email
    for name, value in query.items():
        at.query_params[name] = value
    return at.run()


def open_signed_in(
    d: Deployment, monkeypatch: pytest.MonkeyPatch, email: str, **query: str
) -> AppTest:
    """``signed_in_app`` with the proxy put in place where the picker is not offered."""
    d.use_env(monkeypatch)
    if not demo_picker_offered(d):
        behind_proxy(monkeypatch)
    return signed_in_app(d, email, **query)


@pytest.fixture
def open_app(queue: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenApp]:
    """Open the dashboard as ``email``, optionally on ``page``: through the demo picker on
    SQLite, through the authenticating proxy on PostgreSQL (``demo_picker_offered``)."""
    queue.use_env(monkeypatch)
    picker = demo_picker_offered(queue)
    if not picker:
        behind_proxy(monkeypatch)

    def open_as(email: str | None, page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if email is not None and not picker:
            at.session_state[SIGNED_IN_AS] = email
        at.run()
        if email is not None and picker:
            at.selectbox(key="demo_user").select(email).run()
        if page is not None:
            at.switch_page(page).run()
        return at

    yield open_as
    st.cache_data.clear()
    st.cache_resource.clear()
