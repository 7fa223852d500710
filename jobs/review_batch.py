import click

from compliance.deletion.batches import review_batch
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import ROW_ID


def _parse_exclusions(values: tuple[str, ...]) -> dict[int, str]:
    """``--exclude 42`` or ``--exclude 42:note why``."""
    excluded = {}
    for value in values:
        record, _, note = value.partition(":")
        try:
            excluded[ROW_ID.convert(record, None, None)] = note.strip()
        except click.UsageError:
            raise click.BadParameter(
                f"'{value}' is not a record id (use ID or ID:note)", param_hint="--exclude"
            ) from None
    return excluded


@job_command("review-batch")
@click.argument("batch_id", type=ROW_ID)
@click.option("--accept", "decision", flag_value="accept", help="Accept the batch for deletion.")
@click.option("--reject", "decision", flag_value="reject", help="Reject it (needs --reason).")
@click.option("--reviewer", required=True, help="The compliance officer's email.")
@click.option("--reason", help="Why; required to reject.")
@click.option(
    "--exclude",
    multiple=True,
    metavar="RECORD_ID[:NOTE]",
    help="Keep a record out of an accepted batch (repeatable).",
)
@execute_option
def review(
    batch_id: int,
    decision: str | None,
    reviewer: str,
    reason: str | None,
    exclude: tuple[str, ...],
    execute: bool,
) -> object:
    """Record a compliance officer's decision on BATCH_ID. A second review is refused."""
    if decision is None:
        raise click.UsageError("give --accept or --reject")
    rt = runtime()
    with rt.session() as session:
        result = review_batch(
            session,
            batch_id,
            decision,
            reviewer=identify(rt.policy, reviewer, what="--reviewer"),
            reason=reason,
            exclude=_parse_exclusions(exclude),
            execute=execute,
            policy=rt.policy,
        )
    verb = result.decision.capitalize() if execute else f"Would mark as {result.decision}"
    lines = [
        f"{verb} batch {batch_id} ({result.bucket}): {result.accepted} records accepted, "
        f"{result.excluded} excluded, {result.rejected} rejected"
    ]
    if exclude:
        # An exclusion keeps the record out of this batch only; a hold keeps the subject safe.
        lines.append(
            "  An excluded record is kept out of this batch only. To keep its subject out of "
            "every bucket, place a legal hold: python -m jobs hold add --subject-id ID "
            "--reason TEXT --by EMAIL --execute"
        )
    emit(result, lines, executed=execute)
    return result
