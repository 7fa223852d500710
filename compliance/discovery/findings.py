"""The last scan's findings, kept per system, and the alert when new uncovered data appears.

``plan_findings_record`` says what ``record_findings`` will store (each readable system's
rows replaced by this scan's) and which uncovered columns are new: never announced, or
announced by an alert that failed. ``record_findings`` stores them with an audit event
(counts only), then posts the one alert through ``compliance.ops.alerts``, so a new gap
in the data map reaches the ops channel once. A system that could not be read keeps its
previous findings: nothing new is known about it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from slack_sdk import WebClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.discovery.names import Category
from compliance.discovery.sampling import DEFAULT_SAMPLE
from compliance.discovery.scan import ColumnFinding, Finding, ScanReport, scan_personal_data
from compliance.logs import log_event
from compliance.ops.alerts import (
    Alert,
    OutboxSlack,
    SlackMessage,
    alert_client,
    post_alerts,
    route_channel,
)
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import ScanFinding, utcnow
from compliance.store.states import AlertStatus, FindingStatus

#: The audit trail's names for the scan's events and its alert.
SCAN_TARGET = "scan"
ALERT_TARGET = "personal_data_scan"
#: Columns an alert lists by name; the rest are counted.
MAX_LISTED = 20
_RECOGNISERS_WIDTH = 255
SlackClient = WebClient | OutboxSlack


@dataclass(frozen=True)
class StoredFinding(ColumnFinding):
    """A finding as the last scan stored it (its status is the policy's answer back then)."""

    scanned_at: datetime
    alerted_at: datetime | None


@dataclass
class FindingsPlan:
    """What ``record_findings`` stores and whom it tells."""

    scanned_at: datetime
    #: Systems whose stored findings this scan replaces (those it could read).
    systems: tuple[str, ...]
    findings: list[Finding]
    #: Uncovered columns not announced yet (or whose announcement failed).
    new_uncovered: list[Finding]
    #: Keys of uncovered columns announced before, and when: that is kept.
    announced: dict[str, datetime]
    alert: Alert
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def last_findings(session: Session, system: str | None = None) -> list[StoredFinding]:
    """The stored findings of the last scan of each system (or of one), in a stable order."""
    query = select(ScanFinding).order_by(
        ScanFinding.system, ScanFinding.table_name, ScanFinding.column_name
    )
    if system is not None:
        query = query.where(ScanFinding.system == system)
    return [
        StoredFinding(
            system=row.system,
            table=row.table_name,
            column=row.column_name,
            category=Category(row.category),
            recognisers=tuple(filter(None, row.recognisers.split(","))),
            sampled=row.sampled,
            matched=row.matched,
            status=FindingStatus(row.status),
            scanned_at=row.scanned_at,
            alerted_at=row.alerted_at,
        )
        for row in session.scalars(query)
    ]


def scan_channel(policy: Policy) -> str | None:
    """Where new uncovered data is announced: [scan] ops_channel, else [slack] dsar_channel."""
    return policy.scan.ops_channel or policy.slack.dsar_channel


def uncovered_message(policy: Policy, channel: str, findings: Sequence[Finding]) -> SlackMessage:
    """Names the columns (never a value) and where to map or accept them."""
    slack = policy.slack
    first = findings[0]
    url = (
        f"{slack.dashboard_url.rstrip('/')}/data_map?system={quote(first.system)}"
        f"&table={quote(first.table)}"
    )
    listed = [f"{f.key} ({f.label})" for f in findings[:MAX_LISTED]]
    more = len(findings) - len(listed)
    head = (
        f"Personal data the policy does not cover: {len(findings)} new column(s) in tables "
        "no erasure reaches"
    )
    prefix = "" if slack.production else f"[test, for {channel}] "
    body = "\n".join(listed) + (f"\n…and {more} more" if more else "")
    advice = "Map them in the policy's [tables] or accept them in [scan] accept"
    text = f"{prefix}{head}:\n{body}\n{advice}: {url}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(head)}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(body)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{advice}: <{url}|Data map>"}},
    ]
    return SlackMessage(route_channel(slack, channel), text, blocks)


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _counts(report: ScanReport) -> dict[str, dict[str, int]]:
    return {
        s.name: dict(Counter(str(f.status) for f in s.findings))
        for s in report.systems
        if s.readable
    }


def plan_findings_record(session: Session, policy: Policy, report: ScanReport) -> FindingsPlan:
    """What storing ``report`` changes, and the alert it is due (or why none is)."""
    systems = tuple(s.name for s in report.systems if s.readable)
    before = {
        f.key: f.alerted_at
        for f in last_findings(session)
        if f.system in systems and f.status is FindingStatus.UNCOVERED and f.alerted_at
    }
    findings = [f for s in report.systems if s.readable for f in s.findings]
    uncovered = [f for f in findings if f.status is FindingStatus.UNCOVERED]
    new = [f for f in uncovered if f.key not in before]
    announced = {f.key: before[f.key] for f in uncovered if f.key in before}
    counts = {"new_uncovered": len(new), "uncovered": len(uncovered)}
    channel = scan_channel(policy)
    reason = None
    if not new:
        reason = "no new uncovered personal data"
    elif channel is None:
        reason = "no [scan] ops_channel or [slack] dsar_channel configured"
    if reason is not None or channel is None:
        alert = Alert(ALERT_TARGET, AlertStatus.SKIPPED, reason=reason, counts=counts)
    else:
        message = uncovered_message(policy, channel, new)
        alert = Alert(ALERT_TARGET, AlertStatus.DUE, message=message, counts=counts)
    return FindingsPlan(
        report.finished_at, systems, findings, new, announced, alert, _counts(report)
    )


def record_findings(
    session: Session,
    plan: FindingsPlan,
    *,
    client: SlackClient | None,
    actor: str,
    today: date | None = None,
) -> FindingsPlan:
    """Replace the scanned systems' findings, audit it, then post the due alert (``client``
    may be None only when none is due). A failed post leaves the new columns unannounced,
    so the next scan tries again."""
    if plan.alert.status == AlertStatus.DUE and client is None:
        raise ValueError("an alert is due: give the Slack client that posts it")
    session.execute(delete(ScanFinding).where(ScanFinding.system.in_(plan.systems)))
    session.add_all(
        ScanFinding(
            system=f.system,
            table_name=f.table,
            column_name=f.column,
            category=str(f.category),
            status=str(f.status),
            recognisers=",".join(f.recognisers)[:_RECOGNISERS_WIDTH],
            sampled=f.sampled,
            matched=f.matched,
            scanned_at=plan.scanned_at,
            alerted_at=plan.announced.get(f.key),
        )
        for f in plan.findings
    )
    record_event(
        session, actor=actor, action="scan.recorded", target_type=SCAN_TARGET,
        target_id=",".join(plan.systems), details={"systems": plan.counts},
    )  # fmt: skip
    session.commit()
    if plan.alert.status == AlertStatus.SKIPPED and plan.new_uncovered:
        log_event("alert.skipped", alert=ALERT_TARGET, reason=plan.alert.reason)
    if client is not None and plan.alert.status == AlertStatus.DUE:
        day = today or utcnow().date()
        post_alerts(session, client, [plan.alert], actor=actor, target_type=SCAN_TARGET, today=day)
        if plan.alert.status == AlertStatus.POSTED:
            # The rows just stored unannounced are exactly the new uncovered columns.
            session.execute(
                update(ScanFinding)
                .where(
                    ScanFinding.system.in_(plan.systems),
                    ScanFinding.status == FindingStatus.UNCOVERED,
                    ScanFinding.alerted_at.is_(None),
                )
                .values(alerted_at=utcnow())
            )
            session.commit()
    return plan


def store_scan(
    session: Session,
    policy: Policy,
    report: ScanReport,
    *,
    actor: str,
    make_client: Callable[[], SlackClient],
) -> FindingsPlan:
    """Plan and record ``report``; the Slack client is made only when an alert is due, so a
    deployment without a token fails (ConfigError) only when there is news to tell."""
    plan = plan_findings_record(session, policy, report)
    client = make_client() if plan.alert.status == AlertStatus.DUE else None
    return record_findings(session, plan, client=client, actor=actor)


def run_scan(
    session: Session, policy: Policy, *, by: Identity, sample: int = DEFAULT_SAMPLE
) -> tuple[ScanReport, FindingsPlan]:
    """The Data map page's "Run the scan now": an officer's decision, so the role is checked
    here; every system is scanned and the findings stored, as the weekly job does."""
    actor = require(by, COMPLIANCE_OFFICER, to="run the personal data scan")
    report = scan_personal_data(policy, sample=sample)
    plan = store_scan(
        session, policy, report, actor=actor, make_client=lambda: alert_client(policy)
    )
    return report, plan
