import click

from compliance.dsar.decisions import extend_dsar
from compliance.policy.jurisdictions import MAX_PERIOD_DAYS, MAX_PERIOD_MONTHS
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import whole


@job_command("extend-dsar")
@click.argument("reference")
@click.option("--months", type=whole(1, MAX_PERIOD_MONTHS), help="Extend by this many months.")
@click.option("--days", type=whole(1, MAX_PERIOD_DAYS), help="Or by this many days.")
@click.option("--reason", required=True, help="Why more time is needed (told to the subject).")
@click.option("--by", "by", required=True, metavar="EMAIL", help="The compliance officer's email.")
@execute_option
def extend(
    reference: str, months: int | None, days: int | None, reason: str, by: str, execute: bool
) -> object:
    """Extend REFERENCE's deadline, with a reason, within what its jurisdiction allows
    (GDPR Art. 12(3): at most two more months in total; CCPA: 45 more days)."""
    if (months is None) == (days is None):
        raise click.UsageError("give exactly one of --months or --days")
    rt = runtime()
    with rt.session() as session:
        request = extend_dsar(
            session,
            reference,
            policy=rt.policy,
            months=months or 0,
            days=days or 0,
            reason=reason,
            actor=identify(rt.policy, by, field="by"),
            execute=execute,
        )
    summary = {
        "reference": request.reference,
        "jurisdiction": request.jurisdiction,
        "extended_due_at": request.extended_due_at,
    }
    verb = "Extended" if execute else "Would extend"
    line = f"{verb} {request.reference} to {request.extended_due_at:%Y-%m-%d}"
    emit(summary, [line], executed=execute)
    return summary
