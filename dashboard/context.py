"""What every page needs: the policy, engines, sessions, the signed-in person, cached reads.

Read models are cached for a short time (keyed by the database URL, so two deployments
never share entries) and cleared on every decision, so a page never shows a state the
person who just decided would not recognise. The batch, DSAR and backlog reads are also
keyed by a version the database keeps (``batches_version``, ``requests_version``,
``tasks_version``), so a write by anyone else, in any process, shows on the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance.audit.chain import ChainCheck, verify_chain
from compliance.deletion.profiles import check_declared_kinds
from compliance.deletion.review import BatchTarget, batch_target
from compliance.dsar.rectification import FREE_TEXT
from compliance.policy.datamap import DataMap
from compliance.policy.loader import config_path, load_policy
from compliance.policy.model import Policy
from compliance.policy.systems import SystemKind
from compliance.reports import dsar_stats, evidence, review_queue, stats, versions
from compliance.roles import Identity
from compliance.store.engines import make_engine, session_factory
from compliance.systems import backlog

READ_TTL = 30  # seconds; decisions clear the caches at once
IDENTITY_KEY = "identity"


def policy() -> Policy:
    """The policy file, read on every run: it is small, and edits show up without a restart."""
    return load_policy()


def check_kinds(current: Policy) -> None:
    """ConfigError while the compliance database holds a kind of data subject the policy no
    longer declares (``profiles.check_declared_kinds``, as every job checks it)."""
    _kinds_checked(current.database_url, tuple(current.subject_types))


@st.cache_data(max_entries=8, show_spinner=False)
def _kinds_checked(url: str, kinds: tuple[str, ...]) -> bool:
    """Asked once per process while it holds (a refusal is not cached: asked again)."""
    with session_factory(engine(url))() as s:
        try:
            check_declared_kinds(s, policy())
        except SQLAlchemyError:  # no tables yet: the pages say so themselves
            return False
    return True


@st.cache_resource(max_entries=16, on_release=lambda engine: engine.dispose())
def engine(url: str) -> Engine:
    return make_engine(url)


@st.cache_resource(max_entries=8)
def _datamap(policy_path: str, mtime: float, app_url: str) -> DataMap:
    return DataMap(load_policy(policy_path), engine(app_url))


def _policy_version(current: Policy) -> tuple[str, float]:
    path = Path(current.path or config_path())
    return str(path), path.stat().st_mtime if path.exists() else 0.0


def datamap(current: Policy) -> DataMap:
    """The data map reflected once per policy file version, not on every rerun."""
    return _datamap(*_policy_version(current), current.app_database_url)


@contextmanager
def session(current: Policy) -> Iterator[Session]:
    with session_factory(engine(current.database_url))() as s:
        yield s


def clear_caches() -> None:
    """Called after every decision: the next render reads the databases afresh."""
    st.cache_data.clear()


def identity() -> Identity:
    """The person app.py signed in for this run; pages run only after it did."""
    return st.session_state[IDENTITY_KEY]


def actor() -> str:
    return identity().email


def auth_configured() -> bool:
    """OIDC is on when secrets.toml has an [auth] section."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


# ---------------------------------------------------------------- cached read models


def _with_session(url: str) -> Session:
    return session_factory(engine(url))()


def batches_version(url: str) -> str:
    """The database's version of what the batch pages show, read on every run (not cached).

    Every cached batch read takes it as an argument: a write by anyone, in any process,
    gives the next run new cache keys, so a link never falls back to a stale list.
    """
    with _with_session(url) as s:
        return versions.batches_version(s)


def batches(
    url: str, bucket: str | None, status: str | None, limit: int, offset: int
) -> review_queue.Page:
    return _batches(url, batches_version(url), bucket, status, limit, offset)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _batches(
    url: str, version: str, bucket: str | None, status: str | None, limit: int, offset: int
) -> review_queue.Page:
    with _with_session(url) as s:
        return review_queue.list_batches(
            s, bucket=bucket, status=status, limit=limit, offset=offset
        )


def batch_buckets(url: str) -> list[str]:
    return _batch_buckets(url, batches_version(url))


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _batch_buckets(url: str, version: str) -> list[str]:
    with _with_session(url) as s:
        return review_queue.batch_buckets(s)


def batch_records(url: str, batch_id: int, limit: int, offset: int) -> review_queue.Page:
    return _batch_records(url, batches_version(url), batch_id, limit, offset)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _batch_records(
    url: str, version: str, batch_id: int, limit: int, offset: int
) -> review_queue.Page:
    with _with_session(url) as s:
        return review_queue.batch_records(s, batch_id, limit=limit, offset=offset)


def batch_preview(current: Policy, batch_id: int) -> tuple[pd.DataFrame, BatchTarget]:
    """The impact preview and the target it was read from, together: a decision carries the
    target's version, so it acts on what this preview showed or on nothing."""
    path, mtime = _policy_version(current)
    url = current.database_url
    return _batch_preview(
        url, batches_version(url), path, mtime, current.app_database_url, batch_id
    )


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _batch_preview(
    url: str, version: str, path: str, mtime: float, app_url: str, batch_id: int
) -> tuple[pd.DataFrame, BatchTarget]:
    datamap = _datamap(path, mtime, app_url)
    with _with_session(url) as s:
        target = batch_target(s, batch_id, policy=datamap.policy)
        return review_queue.batch_impact(s, datamap, batch_id), target


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def bucket_progress(url: str) -> pd.DataFrame:
    with _with_session(url) as s:
        return stats.bucket_progress(s)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def deletions_per_week(url: str, weeks: int) -> pd.DataFrame:
    with _with_session(url) as s:
        return stats.deletions_per_week(s, weeks=weeks)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def audit_filter_values(url: str) -> tuple[list[str], list[str]]:
    with _with_session(url) as s:
        return review_queue.audit_filter_values(s)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def audit_log(
    url: str,
    actor: str | None,
    action: str | None,
    since: date | None,
    until: date | None,
    limit: int,
    offset: int,
) -> review_queue.Page:
    with _with_session(url) as s:
        return review_queue.audit_log(
            s, actor=actor, action=action, since=since, until=until, limit=limit, offset=offset
        )


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def audit_log_export(
    url: str, actor: str | None, action: str | None, since: date | None, until: date | None
) -> pd.DataFrame:
    with _with_session(url) as s:
        return review_queue.audit_log_export(
            s, actor=actor, action=action, since=since, until=until
        )


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def chain_check(url: str) -> ChainCheck:
    with _with_session(url) as s:
        return verify_chain(s)


def requests_version(url: str) -> str:
    """The database's version of what the DSAR pages show, read on every run (not cached):
    like ``batches_version``, a write by anyone, in any process, gives new cache keys."""
    with _with_session(url) as s:
        return versions.requests_version(s)


def dsar_overview(url: str) -> dsar_stats.DsarOverview:
    return _dsar_overview(url, requests_version(url))


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _dsar_overview(url: str, version: str) -> dsar_stats.DsarOverview:
    with _with_session(url) as s:
        return dsar_stats.dsar_overview(s)


def dsar_requests(
    url: str, status: str | None, kind: str | None, limit: int, offset: int
) -> tuple[pd.DataFrame, bool]:
    return _dsar_requests(url, requests_version(url), status, kind, limit, offset)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _dsar_requests(
    url: str, version: str, status: str | None, kind: str | None, limit: int, offset: int
) -> tuple[pd.DataFrame, bool]:
    with _with_session(url) as s:
        return review_queue.dsar_requests(s, status=status, kind=kind, limit=limit, offset=offset)


def dsar_counters(url: str) -> dsar_stats.DsarCounters:
    return _dsar_counters(url, requests_version(url))


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _dsar_counters(url: str, version: str) -> dsar_stats.DsarCounters:
    with _with_session(url) as s:
        return dsar_stats.dsar_counters(s)


def record_evidence(current: Policy, bucket: str, keys: tuple[str, ...]) -> evidence.Evidence:
    """Why one page of records is due, read live from the application database (cached briefly)."""
    path, mtime = _policy_version(current)
    return _record_evidence(path, mtime, current.app_database_url, bucket, keys)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _record_evidence(
    path: str, mtime: float, app_url: str, bucket: str, keys: tuple[str, ...]
) -> evidence.Evidence:
    return evidence.record_evidence(_datamap(path, mtime, app_url), bucket, keys)


def pending_batch_ids(url: str, bucket: str | None) -> list[int]:
    return _pending_batch_ids(url, batches_version(url), bucket)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _pending_batch_ids(url: str, version: str, bucket: str | None) -> list[int]:
    with _with_session(url) as s:
        return review_queue.pending_batch_ids(s, bucket=bucket)


def request_impact(current: Policy, references: tuple[str, ...]) -> pd.DataFrame:
    """What approving these erasure requests erases (the approval dialog's preview)."""
    path, mtime = _policy_version(current)
    with _with_session(current.database_url) as s:
        return review_queue.request_impact(
            s, _datamap(path, mtime, current.app_database_url), list(references)
        )


def bulk_preview(
    current: Policy, batch_ids: tuple[int, ...]
) -> tuple[pd.DataFrame, dict[int, BatchTarget]]:
    """The combined impact of several batches and, per batch, the target it was read from."""
    path, mtime = _policy_version(current)
    url = current.database_url
    return _bulk_preview(
        url, batches_version(url), path, mtime, current.app_database_url, batch_ids
    )


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _bulk_preview(
    url: str, version: str, path: str, mtime: float, app_url: str, batch_ids: tuple[int, ...]
) -> tuple[pd.DataFrame, dict[int, BatchTarget]]:
    datamap = _datamap(path, mtime, app_url)
    with _with_session(url) as s:
        targets = {b: batch_target(s, b, policy=datamap.policy) for b in batch_ids}
        return review_queue.bulk_impact(s, datamap, list(batch_ids)), targets


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def outcomes_per_week(url: str, weeks: int) -> pd.DataFrame:
    with _with_session(url) as s:
        return stats.outcomes_per_week(s, weeks=weeks)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def dsar_per_month(url: str, months: int) -> pd.DataFrame:
    with _with_session(url) as s:
        return dsar_stats.dsar_per_month(s, months=months)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def dsar_split(url: str, by: str, months: int) -> pd.DataFrame:
    with _with_session(url) as s:
        return dsar_stats.dsar_split(s, by, months=months)


def system_backlog(current: Policy) -> pd.DataFrame:
    named = {name: system.kind for name, system in current.systems.items()}
    kinds = tuple(sorted((named | {FREE_TEXT: SystemKind.MANUAL}).items()))  # corrections in words
    url = current.database_url
    return _system_backlog(url, tasks_version(url), kinds)


def tasks_version(url: str) -> str:
    """The database's version of the system tasks, read on every run (not cached): like
    ``batches_version``, a task done anywhere gives new cache keys."""
    with _with_session(url) as s:
        return backlog.tasks_version(s)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _system_backlog(url: str, version: str, kinds: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    with _with_session(url) as s:
        return backlog.system_backlog(s, dict(kinds))
