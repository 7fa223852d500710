"""What a task asks of its system beyond who the subject is, by the kind of its request.

An objection's scope, a restriction's start and end, a rectification's changes go with the
webhook call and onto the manual task. Read when the task is sent or shown, never copied into
the task's row: a correction's value is typed text, kept only in free_texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit.texts import REMOVED, texts_by_hash
from compliance.store.models import DsarCorrection, DsarRequest, ErasureTask, LegalHold
from compliance.store.states import DsarKind, HoldKind

#: The task that tells a system a restriction ended (its webhook call is a ``restriction``
#: with its ``end``): each system learns the start, then the end.
RESTRICTION_END = "restriction_end"


@dataclass(frozen=True)
class CorrectionView:
    """A correction as the desk shows it: the value, or ``[removed after erasure]``."""

    table: str | None
    column: str | None
    value: str

    @property
    def removed(self) -> bool:
        return self.value == REMOVED


def corrections_of(session: Session, request_id: int) -> list[CorrectionView]:
    rows = list(
        session.scalars(
            select(DsarCorrection)
            .where(DsarCorrection.dsar_request_id == request_id)
            .order_by(DsarCorrection.id)
        )
    )
    texts = texts_by_hash(session, [r.value_hash for r in rows])
    return [
        CorrectionView(r.table_name, r.column_name, texts.get(r.value_hash, REMOVED)) for r in rows
    ]


def restriction_of(session: Session, request_id: int) -> LegalHold | None:
    """The hold a restriction request placed, if it did."""
    return session.scalars(
        select(LegalHold).where(
            LegalHold.dsar_request_id == request_id, LegalHold.kind == HoldKind.RESTRICTION
        )
    ).first()


@dataclass(frozen=True)
class Period:
    """When a restriction started and ended (None: in force until lifted)."""

    start: datetime | None
    end: datetime | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


def period_of(session: Session, request_id: int) -> Period:
    hold = restriction_of(session, request_id)
    if hold is None:
        return Period(None, None)
    return Period(hold.placed_at, hold.lifted_at or hold.until)


def task_details(session: Session, task: ErasureTask) -> dict[str, Any]:
    """The fields a webhook call carries besides kind, reference, key and subject (and the
    kind a restriction's end is told as: a ``restriction`` call, with its end)."""
    if task.dsar_request_id is None:
        return {}
    request = session.get(DsarRequest, task.dsar_request_id)
    if request is None:
        return {}
    if request.kind == DsarKind.OBJECTION:
        return {"scope": request.scope}
    if request.kind == DsarKind.RESTRICTION:
        # The end is told on the wire as the same kind of call, now with its end.
        kind = {"kind": DsarKind.RESTRICTION.value} if task.action == RESTRICTION_END else {}
        return kind | {"restriction": period_of(session, request.id).as_json()}
    if request.kind == DsarKind.RECTIFICATION:
        return {
            "changes": [
                {"table": c.table, "column": c.column, "value": c.value}
                if c.column
                else {"text": c.value}
                for c in corrections_of(session, request.id)
            ]
        }
    return {}


def task_instructions(session: Session, task: ErasureTask) -> list[str]:
    """What the person doing a manual task needs to know, line by line (plain text)."""
    details = task_details(session, task)
    if "scope" in details:
        words = str(details["scope"]).replace("_", " ")
        return [f"The subject objected to {words}: stop it for them, for good (GDPR Art. 21)."]
    if "changes" in details:
        lines = ["Correct the subject's data (GDPR Art. 16):"]
        for change in details["changes"]:
            if "text" in change:
                lines.append(f"- as they put it: {change['text']}")
            else:
                lines.append(f"- {change['table']}.{change['column']} is now: {change['value']}")
        return lines
    if "restriction" in details:
        start = details["restriction"]["start"] or "now"
        if task.action == RESTRICTION_END:
            end = details["restriction"]["end"]
            return [f"The restriction of processing ended at {end}: processing may resume."]
        return [
            f"Restrict processing from {start}: keep the subject's data and use it for nothing "
            "else until we tell you the restriction is lifted (GDPR Art. 18)."
        ]
    return []
