from typing import Any

import click

from compliance.dsar.decisions import review_dsar
from compliance.dsar.rectification import RectificationPlan, plan_rectification
from compliance.roles import identify
from compliance.store.states import DsarKind
from jobs.cli import emit, execute_option, job_command, runtime

#: "reject" + "d" once printed "Rejectd": each decision's past tense, spelt out.
PAST = {"approve": "Approved", "reject": "Rejected"}


@job_command("review-dsar")
@click.argument("reference")
@click.option("--approve", "decision", flag_value="approve", help="Approve the request.")
@click.option("--reject", "decision", flag_value="reject", help="Reject it (needs --reason).")
@click.option("--reviewer", required=True, help="The compliance officer's email.")
@click.option("--reason", help="Why; required to reject.")
@execute_option
def review(
    reference: str, decision: str | None, reviewer: str, reason: str | None, execute: bool
) -> object:
    """Record a compliance officer's decision on the DSAR request REFERENCE, once.

    Approving an erasure request is its review: its deletion record is accepted (under the
    plan the dry run's impact shows, with [dsar] erasure_review) and applied by the next
    apply-deletions, with no batch to review. Approving a rectification carries out the
    UPDATEs its dry run previews (table, columns, the subject's rows), in the next
    process-dsar-requests run.
    """
    if decision is None:
        raise click.UsageError("give --approve or --reject")
    rt = runtime()
    with rt.session() as session:
        request = review_dsar(
            session,
            reference,
            decision,
            reviewer=identify(rt.policy, reviewer, field="reviewer"),
            four_eyes=rt.policy.review.four_eyes,
            reason=reason,
            policy=rt.policy,
            execute=execute,
        )
        previewing = decision == "approve" and not execute
        # pandas is imported only by the commands that show a table: every job starts faster.
        from compliance.reports.review_queue import request_impact

        preview = (
            request_impact(session, rt.datamap, [request.reference])
            if previewing and request.kind == DsarKind.ERASURE
            else None
        )
        corrections = (
            plan_rectification(session, rt.datamap, request)
            if previewing and request.kind == DsarKind.RECTIFICATION
            else None
        )
    summary: dict[str, object] = {
        "reference": request.reference,
        "decision": decision,
        "status": request.status,
    }
    verb = PAST[decision] if execute else f"Would {decision}"
    lines = [f"{verb} {request.reference} ({request.kind})"]
    if preview is not None:
        rows = preview.to_dict("records")
        summary["impact"] = rows
        lines += _impact_lines(rows)
    if corrections is not None:
        # Table, columns and rows only: the new values are typed text, kept out of job runs.
        summary["changes"] = [
            {"system": c.system, "table": c.table, "columns": sorted(c.values), "rows": c.rows}
            for c in corrections.changes
        ]
        summary["in_words"] = len(corrections.in_words)
        lines += _correction_lines(corrections)
    emit(summary, lines, executed=execute)
    return summary


def _impact_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What approving an erasure request erases, table by table, with why kept rows stay."""
    return [
        "Approving accepts its erasure; the next apply-deletions carries it out:",
        *(
            f"  {row['table']}: {row['action']} {row['rows']}"
            + (f" ({row['legal_basis']})" if row["legal_basis"] else "")
            for row in rows
        ),
    ]


def _correction_lines(corrections: RectificationPlan) -> list[str]:
    """The UPDATEs approving a rectification runs (columns and rows, never the new values)."""
    lines = ["Approving corrects, in the next process-dsar-requests run (one UPDATE each):"]
    lines += [
        f"  {c.table} ({c.system}): {', '.join(sorted(c.values))} on {c.rows} row(s)"
        for c in corrections.changes
    ]
    if corrections.in_words:
        lines.append(f"  and {len(corrections.in_words)} correction(s) in words, for a person")
    return lines
