"""Anchors: the audit chain's head written down outside the database, so no one can cut it.

A hash chain proves that no event was changed *between* two events, but whoever can write
the database can delete the newest events, or recompute every hash after editing one, and
the chain still verifies. An anchor (last event id, its hash, the number of events, when)
written to an append-only file, and posted to the ops channel on Slack, is evidence the
database's owner cannot reach: ``verify-audit-log`` checks the chain against the latest one.

The anchor file holds one JSON object a line. Each line names the SHA-256 of the line
before it, so a line edited or removed in the file itself is found too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.audit.chain import GENESIS, record_event
from compliance.errors import ConfigError
from compliance.logs import log_event
from compliance.store.models import AuditEvent, utcnow

ANCHOR_ACTION = "audit_log.anchored"


@dataclass(frozen=True)
class Anchor:
    """The chain's head at one moment: the newest event, its hash, how many events there were."""

    event_id: int
    hash: str
    count: int
    anchored_at: datetime
    #: SHA-256 of the anchor file's previous line (GENESIS for the first).
    prev: str = GENESIS

    def line(self) -> str:
        return json.dumps(
            {
                "event_id": self.event_id,
                "hash": self.hash,
                "count": self.count,
                "anchored_at": self.anchored_at.isoformat(),
                "prev": self.prev,
            },
            sort_keys=True,
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class AnchorPlan:
    anchor: Anchor
    file: Path
    slack_channel: str | None  # None: Slack is not configured; only the file is written
    slack_text: str


@dataclass(frozen=True)
class AnchorResult:
    anchor: Anchor
    file: Path
    slack_channel: str | None
    slack_ts: str | None
    slack_error: str | None


@dataclass(frozen=True)
class AnchorCheck:
    """The chain compared with the latest anchor; ``problem`` names what is missing or changed."""

    ok: bool
    anchor: Anchor | None
    problem: str | None = None


def chain_head(session: Session, now: datetime | None = None) -> Anchor:
    """The newest event, its hash and the number of events (an empty log anchors as 0)."""
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    newest = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    event_id, digest = (int(newest[0]), str(newest[1])) if newest else (0, GENESIS)
    return Anchor(event_id, digest, count, now or utcnow())


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def read_anchors(path: Path) -> list[Anchor]:
    """Every anchor in the file, oldest first; a line edited, removed or reordered is refused."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"audit.anchor_file {path} cannot be read: {exc}") from None
    anchors = []
    expected_prev = GENESIS
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            anchor = Anchor(
                event_id=int(data["event_id"]),
                hash=str(data["hash"]),
                count=int(data["count"]),
                anchored_at=datetime.fromisoformat(data["anchored_at"]),
                prev=str(data["prev"]),
            )
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"audit.anchor_file {path}: line {number} is not an anchor (the file was edited)"
            ) from None
        if anchor.prev != expected_prev:
            raise ConfigError(
                f"audit.anchor_file {path}: line {number} does not follow the line before it "
                "(an anchor was removed or edited)"
            )
        expected_prev = _line_hash(line)
        anchors.append(anchor)
    return anchors


def _next_prev(path: Path) -> str:
    """The hash the next line must name: that of the file's last line."""
    try:
        lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except FileNotFoundError:
        return GENESIS
    return _line_hash(lines[-1]) if lines else GENESIS


def anchor_text(anchor: Anchor) -> str:
    return (
        f"Audit log anchor: {anchor.count} events, newest event {anchor.event_id} "
        f"(hash {anchor.hash}), at {anchor.anchored_at.isoformat()}"
    )


def plan_anchor(
    session: Session, anchor_file: Path | None, slack_channel: str | None
) -> AnchorPlan:
    """What ``anchor-audit-log`` would write: the head now, the file, the Slack channel."""
    if anchor_file is None:
        raise ConfigError(
            "audit.anchor_file: not set; name a file outside the database's host to anchor to"
        )
    read_anchors(anchor_file)  # refuse to append to a file that was tampered with
    head = chain_head(session)
    anchor = Anchor(head.event_id, head.hash, head.count, head.anchored_at, _next_prev(anchor_file))
    return AnchorPlan(anchor, anchor_file, slack_channel, anchor_text(anchor))


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append one line with O_APPEND and fsync: an anchor is never rewritten, only added."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (anchor.line() + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"audit.anchor_file {path} cannot be written: {exc.strerror or exc}"
        ) from None


def execute_anchor(
    session: Session,
    plan: AnchorPlan,
    *,
    actor: str,
    post: Callable[[str, str], str] | None,
) -> AnchorResult:
    """Write the planned anchor to the file, post it to Slack, and audit that it was done.

    ``post(channel, text)`` returns the message's ts; it may raise ``AnchorPostFailed``.
    The file comes first: it is the anchor verify-audit-log reads.
    """
    append_anchor(plan.file, plan.anchor)
    ts, error = None, None
    if plan.slack_channel and post is not None:
        try:
            ts = post(plan.slack_channel, plan.slack_text)
        except AnchorPostFailed as exc:
            error = str(exc)
            log_event("audit.anchor_post_failed", channel=plan.slack_channel, error=error)
    details: dict[str, Any] = {
        "event_id": plan.anchor.event_id,
        "hash": plan.anchor.hash,
        "count": plan.anchor.count,
        "file": str(plan.file),
    }
    if plan.slack_channel:
        details["slack_channel"] = plan.slack_channel
        details["slack_posted"] = ts is not None
    record_event(
        session,
        actor=actor,
        action=ANCHOR_ACTION,
        target_type="audit_log",
        target_id=str(plan.anchor.event_id),
        details=details,
    )
    session.commit()
    log_event("audit.anchored", event_id=plan.anchor.event_id, count=plan.anchor.count)
    return AnchorResult(plan.anchor, plan.file, plan.slack_channel, ts, error)


class AnchorPostFailed(Exception):
    """Slack refused or could not be reached; the file anchor still stands."""


def check_anchor(session: Session, anchor_file: Path | None) -> AnchorCheck:
    """Compare the chain with the latest anchor: events cut off, removed or rewritten.

    The trail records each anchor it was given (``audit_log.anchored``), so the file must
    hold at least as many anchors as the trail records, and the trail must still hold the
    record of the file's latest one: a missing or emptied file, a removed last line, or a
    log cut back to an earlier anchor are all findings, not "no anchor yet".
    """
    table = AuditEvent.__table__
    recorded = list(
        session.scalars(
            select(table.c.target_id).where(table.c.action == ANCHOR_ACTION).order_by(table.c.id)
        )
    )
    if anchor_file is None:
        if recorded:
            return AnchorCheck(
                False,
                None,
                f"the audit trail records {len(recorded)} anchors but [audit] anchor_file is "
                "not set: the anchors cannot be checked",
            )
        return AnchorCheck(True, None)
    try:
        anchors = read_anchors(anchor_file)
    except ConfigError as exc:  # the evidence itself was tampered with: a finding, exit 1
        return AnchorCheck(False, None, str(exc))
    removed = _file_against_trail(anchor_file, anchors, recorded)
    if removed is not None:
        return removed
    if not anchors:
        return AnchorCheck(True, None)
    return _latest_against_log(session, anchors[-1], recorded)


def _file_against_trail(
    anchor_file: Path, anchors: list[Anchor], recorded: list[str]
) -> AnchorCheck | None:
    """The anchor file against the anchors the trail records: fewer lines, some were removed."""
    if len(anchors) < len(recorded):
        state = "is missing or empty" if not anchors else f"holds only {len(anchors)}"
        return AnchorCheck(
            False,
            anchors[-1] if anchors else None,
            f"the anchor file {anchor_file} {state}, but the audit trail records "
            f"{len(recorded)} anchors (the latest of event {recorded[-1]}): anchors were removed",
        )
    return None


def _latest_against_log(session: Session, latest: Anchor, recorded: list[str]) -> AnchorCheck:
    """The latest anchor against the log: its event, hash, count and own record must all stand."""
    table = AuditEvent.__table__
    when = latest.anchored_at.isoformat()
    newest = session.scalar(select(func.max(table.c.id))) or 0
    if latest.event_id == 0:
        return AnchorCheck(True, latest)
    row = session.execute(select(table.c.hash).where(table.c.id == latest.event_id)).first()
    if row is None:
        return _anchored_event_missing(latest, newest, when)
    if row[0] != latest.hash:
        return AnchorCheck(
            False,
            latest,
            f"the audit log was rewritten: event {latest.event_id}'s hash differs from the "
            f"anchor of {when} (the chain was recomputed after events were changed)",
        )
    count = session.scalar(
        select(func.count()).select_from(table).where(table.c.id <= latest.event_id)
    )
    if count != latest.count:
        return AnchorCheck(
            False,
            latest,
            f"the audit log was rewritten: the anchor of {when} recorded {latest.count} events "
            f"up to event {latest.event_id}, the log now holds {count}",
        )
    if str(latest.event_id) not in recorded:
        # The anchor's own record is written right after its line: a log cut back to exactly
        # the anchored event (an earlier anchor's, once the last line was removed) lacks it.
        return AnchorCheck(
            False,
            latest,
            f"the audit log was cut back to the anchor of {when}: the event recording that "
            f"anchor (after event {latest.event_id}) is missing (if anchor-audit-log was "
            "interrupted, run it again and verify)",
        )
    return AnchorCheck(True, latest)


def _anchored_event_missing(latest: Anchor, newest: int, when: str) -> AnchorCheck:
    """Tells a log truncated before the anchored event from that one event deleted."""
    if newest < latest.event_id:
        first_missing = newest + 1
        span = (
            f"event {latest.event_id} is"
            if first_missing == latest.event_id
            else f"events {first_missing} to {latest.event_id} are"
        )
        return AnchorCheck(
            False,
            latest,
            f"the audit log was truncated: {span} missing (the anchor of {when} "
            f"recorded {latest.count} events up to event {latest.event_id}; "
            f"the log now ends at event {newest})",
        )
    return AnchorCheck(
        False,
        latest,
        f"event {latest.event_id}, anchored on {when}, is missing from the audit log",
    )


def slack_poster(client: WebClient) -> Callable[[str, str], str]:
    """Post an anchor with the real Slack client; errors become ``AnchorPostFailed``."""

    def post(channel: str, text: str) -> str:
        try:
            response = client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            error = exc.response.get("error") or "unknown error"
            raise AnchorPostFailed(f"Slack said {error}") from None
        except OSError as exc:
            raise AnchorPostFailed(f"Slack unreachable: {exc}") from None
        return str(response.get("ts") or "")

    return post
