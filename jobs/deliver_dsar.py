import click

from compliance.dsar.delivery import deliver_export
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import download_url_option


@job_command("deliver-dsar")
@click.argument("reference")
@download_url_option
@click.option(
    "--by", "by", required=True, metavar="EMAIL", help="The support or compliance officer's email."
)
@execute_option
def deliver(reference: str, download_url: str, by: str, execute: bool) -> object:
    """Email the subject a one-time link to REFERENCE's export, and its code separately."""
    rt = runtime()
    with rt.session() as session:
        new = deliver_export(
            session,
            rt.policy,
            reference,
            actor=identify(rt.policy, by, field="by"),
            download_url=download_url,
            execute=execute,
        )
    # The token and code go to the data subject only: never printed, logged or stored.
    summary = {
        "reference": new.reference,
        "delivery_id": new.delivery_id if execute else None,
        "token_expires_at": new.token_expires_at,
        "otp_expires_at": new.otp_expires_at,
    }
    verb = "Emailed" if execute else "Would email"
    line = f"{verb} a download link and a separate code for {new.reference} to the subject"
    emit(summary, [line + " (link valid 24 h, code 15 min)"], executed=execute)
    return summary
