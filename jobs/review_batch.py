import click

from compliance.deletion.review import plan_bulk_review, review_batch, review_batches
from compliance.errors import quoted
from compliance.roles import identify
from compliance.store.states import BatchStatus
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import ROW_ID


def _parse_exclusions(values: tuple[str, ...]) -> dict[int, str]:
    """``--exclude 42:why it is kept``; the library refuses an exclusion without a note."""
    excluded = {}
    for value in values:
        record, _, note = value.partition(":")
        try:
            record_id = ROW_ID.convert(record, None, None)
        except click.UsageError:
            raise click.BadParameter(
                f"{quoted(record)} is not a record id (use RECORD_ID:NOTE)", param_hint="--exclude"
            ) from None
        excluded[record_id] = note
    return excluded


@job_command("review-batch")
@click.argument("batch_id", type=ROW_ID, required=False)
@click.option(
    "--all-pending",
    is_flag=True,
    help="Decide every pending batch of --bucket (each decided and audited on its own).",
)
@click.option("--bucket", help="With --all-pending: the bucket whose pending batches to decide.")
@click.option("--accept", "decision", flag_value="accept", help="Accept for deletion.")
@click.option("--reject", "decision", flag_value="reject", help="Reject (needs --reason).")
@click.option("--reviewer", required=True, help="The compliance officer's email.")
@click.option("--reason", help="Why; required to reject.")
@click.option(
    "--exclude",
    multiple=True,
    metavar="RECORD_ID:NOTE",
    help="Keep a record out of an accepted batch, saying why (repeatable).",
)
@click.option(
    "--seen-version",
    metavar="VERSION",
    help="The version show-batch printed: refused if the batch changed since.",
)
@execute_option
def review(
    batch_id: int | None,
    all_pending: bool,
    bucket: str | None,
    decision: str | None,
    reviewer: str,
    reason: str | None,
    exclude: tuple[str, ...],
    seen_version: str | None,
    execute: bool,
) -> object:
    """Record a compliance officer's decision on BATCH_ID, or on every pending batch of a
    bucket with --all-pending --bucket B. A batch already decided is never decided again."""
    if decision is None:
        raise click.UsageError("give --accept or --reject")
    if all_pending:
        if batch_id is not None:
            raise click.UsageError("give either BATCH_ID or --all-pending, not both")
        if not bucket:
            raise click.UsageError("--all-pending needs --bucket")
        if exclude or seen_version:
            raise click.UsageError(
                "--exclude and --seen-version apply to one batch, not to --all-pending"
            )
        return _review_all_pending(bucket, decision, reviewer, reason, execute)
    if batch_id is None:
        raise click.UsageError("give BATCH_ID, or --all-pending --bucket B")
    if bucket:
        raise click.UsageError("--bucket only goes with --all-pending")
    rt = runtime()
    with rt.session() as session:
        result = review_batch(
            session,
            batch_id,
            decision,
            reviewer=identify(rt.policy, reviewer, field="reviewer"),
            reason=reason,
            exclude=_parse_exclusions(exclude),
            execute=execute,
            policy=rt.policy,
            seen_version=seen_version,
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


def _review_all_pending(
    bucket: str, decision: str, reviewer: str, reason: str | None, execute: bool
) -> object:
    rt = runtime()
    with rt.session() as session:
        plan = plan_bulk_review(session, decision, bucket=bucket, policy=rt.policy)
        result = review_batches(
            session,
            plan,
            reviewer=identify(rt.policy, reviewer, field="reviewer"),
            reason=reason,
            execute=execute,
            policy=rt.policy,
        )
    status = BatchStatus.ACCEPTED if decision == "accept" else BatchStatus.REJECTED
    verb = status.capitalize() if execute else f"Would mark as {status}"
    lines = [
        f"{verb} batch {r.batch_id} ({r.bucket}): {r.accepted} records accepted, "
        f"{r.excluded} excluded, {r.rejected} rejected"
        for r in result.decided
    ]
    lines += [f"Skipped batch {batch}: {why}" for batch, why in result.skipped]
    lines.append(
        f"{len(result.decided)} of {len(plan.batch_ids)} pending batches of {bucket} "
        f"{'decided' if execute else 'would be decided'}"
    )
    emit(result, lines, executed=execute)
    if result.skipped:
        raise JobFailed(f"{len(result.skipped)} batch(es) were decided by someone else meanwhile")
    return result
