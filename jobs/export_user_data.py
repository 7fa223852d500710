from pathlib import Path

import click

from compliance.dsar.exports import export_user_data
from compliance.errors import InvalidInput
from compliance.policy.model import Policy
from compliance.roles import Identity, identify
from compliance.storage import export_store
from jobs.cli import emit, job_command, runtime
from jobs.params import FOLDER, SUBJECT_ID, subject_type_option


@job_command("export-user-data", mutating=False)
@click.option(
    "--subject-id",
    required=True,
    type=SUBJECT_ID,
    help="The subject's key in the application database.",
)
@subject_type_option
@click.option(
    "--by",
    "by",
    help="Email of the support person or compliance officer taking the export "
    "(default: --actor, when that is their email).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True
)
@click.option(
    "--output",
    type=FOLDER,
    help="Folder to write a local file to (default: the export store, [exports]).",
)
def export(
    subject_id: str, subject_type: str | None, by: str | None, fmt: str, output: str | None
) -> object:
    """Write one subject's data for support (json: one file; csv: a ZIP of CSVs). Audited
    under the name of the person taking it, who needs the support or officer role. Without
    --output it goes to the export store, where cleanup and erasure find it."""
    rt = runtime()
    taker = _taker(rt.policy, by, rt.actor)
    with rt.session() as session:
        result = export_user_data(
            session,
            rt.datamap,
            subject_id,
            fmt=fmt,
            directory=Path(output) if output else None,
            store=None if output else export_store(rt.policy),
            actor=taker,
            subject_type=subject_type,
        )
    summary = {
        "path": result.location,
        "bytes": result.bytes,
        "sha256": result.sha256,
        "rows": result.rows,
    }
    rows = sum(result.rows.values())
    emit(summary, [f"Wrote {result.location} ({rows} rows, {result.bytes} bytes)"])
    return summary


def _taker(policy: Policy, by: str | None, actor: str) -> Identity:
    """--by, or else the run's --actor when that names a person (COMPLIANCE_ACTOR=email)."""
    if by is not None:
        return identify(policy, by, field="by")
    try:
        return identify(policy, actor, field="by")  # refused below in --by's words
    except InvalidInput:
        raise click.UsageError(
            "give --by EMAIL: the support person or compliance officer taking the export "
            "(the run's --actor is not an email)"
        ) from None
