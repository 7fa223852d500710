"""Read-only views for a terminal: a batch's records, a request's timeline (what pages show)."""

from __future__ import annotations

import click

from compliance.dsar.desk import request_detail
from jobs.cli import emit, job_command, runtime
from jobs.params import ROW_ID


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else "-"


@job_command("show-batch", mutating=False)
@click.argument("batch_id", type=ROW_ID)
def show_batch(batch_id: int) -> object:
    """List BATCH_ID's records: record id, subject id, why each is due (read live from the
    application database, as the batch page shows it) and flags. Changes nothing.

    The version printed is what ``review-batch --seen-version`` takes, so a decision made
    from this listing is refused if the batch changes meanwhile."""
    from compliance.reports.batch_sheet import batch_sheet  # pandas only when a batch is shown

    rt = runtime()
    with rt.session() as session:
        sheet = batch_sheet(session, rt.datamap, batch_id)
    lines = [
        f"Batch {sheet.batch_id} · {sheet.bucket} · {sheet.status} · {sheet.target.records} "
        f"records ({sheet.target.excluded} excluded, {sheet.target.held} on legal hold)",
        f"Version: {sheet.target.version}",
    ]
    if sheet.reviewed_by:
        why = f": {sheet.reviewed_reason}" if sheet.reviewed_reason else ""
        when = _when(sheet.reviewed_at)
        lines.append(f"{sheet.status.capitalize()} by {sheet.reviewed_by} at {when}{why}")
    if sheet.evidence:
        lines += [f"Why due — {header}: {meaning}" if header != meaning else f"Why due — {header}"
                  for header, meaning in sheet.evidence.items()]  # fmt: skip
    else:
        lines.append("Why due — the data subject asked for erasure (a DSAR request)")
    for r in sheet.records:
        why = "; ".join(f"{k}: {'-' if v is None else v}" for k, v in r.why_due.items())
        line = f"  record {r.record_id} · subject {r.subject_id}"
        line += f" · {why}" if why else ""
        line += f" · {r.flags}" if r.flags else ""
        line += f" · note: {r.note}" if r.note else ""
        lines.append(line)
    if not sheet.records:
        lines.append("  (no records: they were purged)")
    emit(sheet, lines)
    return {"batch_id": sheet.batch_id, "records": len(sheet.records)}


@job_command("show-request", mutating=False)
@click.argument("reference")
def show_request(reference: str) -> object:
    """Print the DSAR request REFERENCE with its deadline, identity check, systems and
    timeline, as the DSAR page shows it. Changes nothing."""
    rt = runtime()
    with rt.session() as session:
        # No roles: a terminal is shown the request, not the dashboard's buttons.
        detail = request_detail(session, rt.policy, reference, roles=())
    due = f"due {_when(detail.due_at)} ({detail.jurisdiction})"
    if detail.days_left is None:
        deadline = due
    elif detail.overdue:
        deadline = f"{due}, {-detail.days_left} day(s) overdue"
    else:
        deadline = f"{due}, {detail.days_left} day(s) left"
    lines = [
        f"{detail.reference} · {detail.kind} · {detail.status} · subject {detail.subject_id}",
        f"Logged by {detail.requested_by} at {_when(detail.requested_at)}; {deadline}",
        f"Identity check: {detail.identity}",
    ]
    if detail.scope:
        lines.append(f"Objects to: {detail.scope}")
    lines += [
        f"Correct {c.table}.{c.column} to: {c.value}" if c.column else f"Correct: {c.value}"
        for c in detail.corrections
    ]
    if detail.restriction is not None:
        end = f"lifted {_when(detail.restriction.end)}" if detail.restriction.end else "in force"
        lines.append(f"Restricted since {_when(detail.restriction.start)}: {end}")
    if detail.reviewed_by:
        why = f": {detail.reviewed_reason}" if detail.reviewed_reason else ""
        lines.append(f"Reviewed by {detail.reviewed_by}{why}")
    if detail.last_error:
        lines.append(f"Last error: {detail.last_error}")
    lines += [f"System {s.system} ({s.kind}): {s.status}" for s in detail.systems]
    lines.append("Timeline:")
    lines += [f"  {_when(e.occurred_at)} · {e.label} · {e.actor}" for e in detail.timeline]
    lines += [f"Note by {n.author} at {_when(n.created_at)}: {n.body}" for n in detail.notes]
    emit({k: v for k, v in detail.__dict__.items() if k != "actions"}, lines)
    return {"reference": detail.reference, "status": detail.status}
