import click

from compliance.dsar.decisions import retry_dsar
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime


@job_command("retry-dsar")
@click.argument("reference")
@click.option("--by", "by", required=True, metavar="EMAIL", help="The compliance officer's email.")
@execute_option
def retry(reference: str, by: str, execute: bool) -> object:
    """Put the failed request REFERENCE back for process-dsar-requests."""
    rt = runtime()
    with rt.session() as session:
        request = retry_dsar(
            session, reference, actor=identify(rt.policy, by, field="by"), execute=execute
        )
    summary = {"reference": request.reference, "last_error": request.last_error}
    verb = "Queued" if execute else "Would queue"
    line = f"{verb} {request.reference} again (it failed: {request.last_error})"
    emit(summary, [line], executed=execute)
    return summary
