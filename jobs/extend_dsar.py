import click

from compliance.dsar.requests import extend_dsar
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import whole


@job_command("extend-dsar")
@click.argument("reference")
@click.option("--months", required=True, type=whole(1, 2), help="1 or 2; at most two in total.")
@click.option("--reason", required=True, help="Why more time is needed (told to the subject).")
@click.option("--by", "by", required=True, metavar="EMAIL", help="The compliance officer's email.")
@execute_option
def extend(reference: str, months: int, reason: str, by: str, execute: bool) -> object:
    """Extend REFERENCE's deadline (GDPR Art. 12(3): at most two more months, with a reason)."""
    rt = runtime()
    with rt.session() as session:
        request = extend_dsar(
            session,
            reference,
            months=months,
            reason=reason,
            actor=identify(rt.policy, by, field="by"),
            execute=execute,
        )
    summary = {"reference": request.reference, "extended_due_at": request.extended_due_at}
    verb = "Extended" if execute else "Would extend"
    line = f"{verb} {request.reference} to {request.extended_due_at:%Y-%m-%d}"
    emit(summary, [line], executed=execute)
    return summary
