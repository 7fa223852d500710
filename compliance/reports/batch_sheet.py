"""One batch with all its records and why each is due: what `show-batch` prints.

The same read models the batch page shows (``review_queue.batch_records`` for the records
and their flags, ``evidence.record_evidence`` for why each is due), over every page of the
batch, so an officer at a terminal sees what the dashboard shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from compliance.deletion.review import BatchTarget, batch_target, get_batch
from compliance.policy.datamap import DataMap
from compliance.reports.evidence import record_evidence
from compliance.reports.review_queue import MAX_PAGE_SIZE, batch_records


@dataclass(frozen=True)
class SheetRecord:
    record_id: int
    subject_id: str
    #: Per evidence column (its header, as the batch page shows it), the value read now.
    why_due: dict[str, Any]
    flags: str
    note: str | None


@dataclass(frozen=True)
class BatchSheet:
    batch_id: int
    bucket: str
    status: str
    created_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    reviewed_reason: str | None
    #: What a decision acts on; its ``version`` is what ``review-batch --seen-version`` takes.
    target: BatchTarget
    #: What each evidence column means ("newest last_login_at in users; due when ...").
    evidence: dict[str, str]
    records: list[SheetRecord]


def _value(value: Any) -> Any:
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return None
    return value.isoformat() if isinstance(value, datetime) else value


def batch_sheet(session: Session, datamap: DataMap, batch_id: int) -> BatchSheet:
    """Every record of the batch with its flags, note and why it is due (read live)."""
    batch = get_batch(session, batch_id)
    target = batch_target(session, batch_id, policy=datamap.policy)
    frames: list[pd.DataFrame] = []
    offset = 0
    while True:
        page = batch_records(session, batch_id, limit=MAX_PAGE_SIZE, offset=offset)
        frames.append(page.frame)
        offset += MAX_PAGE_SIZE
        if offset >= page.total:
            break
    records = pd.concat(frames) if frames else pd.DataFrame()
    keys = [str(k) for k in records["subject_id"]]
    columns: dict[str, str] = {}
    proof: dict[str, dict[str, Any]] = {key: {} for key in keys}
    for start in range(0, len(keys), MAX_PAGE_SIZE):
        found = record_evidence(datamap, batch.bucket, keys[start : start + MAX_PAGE_SIZE])
        columns = {c.header: c.meaning for c in found.columns}
        for row in found.frame.to_dict("records"):
            proof[str(row["subject_id"])] = {c.header: _value(row[c.name]) for c in found.columns}
    return BatchSheet(
        batch_id=batch.id,
        bucket=batch.bucket,
        status=batch.reviewed_status,
        created_at=batch.created_at,
        reviewed_by=batch.reviewed_by,
        reviewed_at=batch.reviewed_at,
        reviewed_reason=batch.reviewed_reason,
        target=target,
        evidence=columns,
        records=[
            SheetRecord(
                int(r.record_id), str(r.subject_id), proof.get(str(r.subject_id), {}), r.flags,
                r.note if isinstance(r.note, str) else None,
            )
            for r in records.itertuples(index=False)
        ],
    )  # fmt: skip
