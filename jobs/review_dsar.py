import click

from compliance.dsar.requests import review_dsar
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime


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
    """Record a compliance officer's decision on the DSAR request REFERENCE, once."""
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
            execute=execute,
        )
    summary = {"reference": request.reference, "decision": decision, "status": request.status}
    verb = f"{decision.capitalize()}d" if execute else f"Would {decision}"
    emit(summary, [f"{verb} {request.reference} ({request.kind})"], executed=execute)
    return summary
