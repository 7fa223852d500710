import click

from compliance.dsar.rights import lift_restriction, plan_lift_restriction
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime


@job_command("lift-restriction")
@click.argument("reference")
@click.option("--reason", required=True, help="Why it is lifted (the subject is told it).")
@click.option("--by", "by", required=True, metavar="EMAIL", help="The compliance officer's email.")
@execute_option
def lift(reference: str, reason: str, by: str, execute: bool) -> object:
    """Lift the restriction of processing REFERENCE placed: the subject is emailed the reason
    first (GDPR Art. 18(3)), and the hold ends only once the mail server took it."""
    rt = runtime()
    with rt.session() as session:
        plan = plan_lift_restriction(
            session, reference, reason=reason, by=identify(rt.policy, by, field="by")
        )
        told = lift_restriction(session, rt.policy, plan) if execute else None
    summary = {"reference": plan.reference, "hold_id": plan.hold_id, "lifted": told is not None}
    if told is None:
        line = f"Would tell the subject, then lift the restriction of {plan.reference}"
    else:
        line = f"Told the subject and lifted the restriction of {plan.reference}"
    emit(summary, [f"{line} (hold {plan.hold_id})"], executed=execute)
    return summary
