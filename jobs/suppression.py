from pathlib import Path

import click

from compliance.dsar.objections import SCOPES, list_suppressions, suppressions_csv
from compliance.errors import InvalidInput, quoted
from jobs.cli import cli, emit, job_command, runtime


@cli.group("suppression")
def suppression() -> None:
    """The suppression list: subjects who objected (GDPR Art. 21), kept after their erasure."""


@job_command("list", group=suppression, mutating=False)
@click.option("--scope", help=f"Only this scope: one of {', '.join(SCOPES)}.")
@click.option("--email", help="Only this address (matched by its keyed hash).")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False),
    help="Also write the list to this CSV file (formula cells neutralised).",
)
def list_command(scope: str | None, email: str | None, csv_file: str | None) -> object:
    """List suppressions: profile, subject key, scope, keyed hash of the email, request.

    No email or name is kept; --email finds an address by its keyed hash, so one imported
    again after the subject's erasure is still found."""
    rt = runtime()
    with rt.session() as session:
        views = list_suppressions(session, rt.policy, scope=scope, email=email)
    if csv_file is not None:
        try:
            Path(csv_file).write_bytes(suppressions_csv(views))
        except OSError as exc:
            raise InvalidInput(
                f"--csv: cannot write {quoted(csv_file)}: {exc.strerror or type(exc).__name__}"
            ) from None
    lines = [
        f"{v.id}: subject {v.subject_id} (profile {v.profile_id}) · {v.scope} · "
        f"{v.reference or '-'} · since {v.recorded_at:%Y-%m-%d}"
        for v in views
    ] or ["No suppression."]
    if csv_file is not None:
        lines.append(f"Wrote {len(views)} suppression(s) to {csv_file}")
    summary = {"suppressions": views, "csv": csv_file}
    emit(summary, lines)
    return summary
