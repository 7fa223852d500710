import click

from compliance.deletion.apply import DEFAULT_CHUNK_SIZE, MAX_WORKERS, ApplyResult, apply_deletions
from compliance.deletion.records import MAX_CHUNK_SIZE
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import BUCKET, whole


@job_command("apply-deletions")
@click.option(
    "--bucket", type=BUCKET, help="Only this bucket (default: every bucket with accepted records)."
)
@click.option(
    "--chunk-size",
    default=DEFAULT_CHUNK_SIZE,
    show_default=True,
    type=whole(1, MAX_CHUNK_SIZE),
    help="Records per commit.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_WORKERS),
    help="Erase with this many connections at once (PostgreSQL; each record still once).",
)
@click.option(
    "--retry-blocked",
    "retry_blocked",
    is_flag=True,
    help="Try again the records a foreign key blocked (they otherwise wait for a policy change).",
)
@execute_option
def apply(
    bucket: str | None, chunk_size: int, workers: int, retry_blocked: bool, execute: bool
) -> object:
    """Erase the data of accepted records whose scheduled time has come.

    Exits 1 while a due record is refused (legal hold, policy widened or changed after
    acceptance), failed, or found blocked by a foreign key for the first time.
    """
    rt = runtime()
    with rt.session() as session:
        result = apply_deletions(
            session,
            rt.datamap,
            actor=rt.actor,
            execute=execute,
            bucket=bucket,
            chunk_size=chunk_size,
            workers=workers,
            retry_blocked=retry_blocked,
        )
    emit(result, summary_lines(result), executed=execute)
    if result.needing_attention():
        raise JobFailed(
            f"{result.held + result.widened} records refused, {result.newly_blocked} newly "
            f"blocked, {result.failed} failed; see deletion_error"
        )
    return result


def summary_lines(result: ApplyResult) -> list[str]:
    """Every due record, counted once under what became of it (or would become, dry)."""
    verb = "Erased" if result.executed else "Would erase"
    lines = [f"{verb} {result.applied} of {result.due} due records"]
    if result.retried_blocked:
        lines.append(f"  {result.retried_blocked} blocked records tried again (--retry-blocked)")
    lines += [
        f"  {result.waiting} waiting on a manual or webhook system (see the System tasks page)",
        f"  {result.held} refused: on legal hold",
        f"  {result.widened} refused: the policy widened or changed after their batch was "
        "accepted (re-review)",
        f"  {result.blocked} blocked by a foreign key from kept data "
        f"({result.newly_blocked} new; they wait until the policy changes or --retry-blocked)",
        f"  {result.awaiting_export} waiting: their subject has an open access request, "
        "whose export is built first",
        f"  {result.failed} failed",
    ]
    lines += [f"  {table}: {n} rows" for table, n in sorted(result.rows.items())]
    lines += [f"  record {e['record_id']}: {e['error']}" for e in result.errors]
    return lines
