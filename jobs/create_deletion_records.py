import click

from compliance.deletion.records import MAX_STAGED_CHUNK_SIZE, create_deletion_records
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import BUCKET, whole


@job_command("create-deletion-records")
@click.option(
    "--bucket", type=BUCKET, required=True, help="The bucket whose rules find the due subjects."
)
@click.option(
    "--chunk-size",
    type=whole(1, MAX_STAGED_CHUNK_SIZE),
    help="Subjects per commit (default 50,000 on PostgreSQL, 5,000 and at most 10,000 on SQLite).",
)
@execute_option
def create_records(bucket: str, chunk_size: int | None, execute: bool) -> object:
    """Open one deletion record per due subject of BUCKET (skips subjects with one open)."""
    rt = runtime()
    with rt.session() as session:
        result = create_deletion_records(
            session, rt.datamap, bucket, actor=rt.actor, execute=execute, chunk_size=chunk_size
        )
    verb = "Created" if execute else "Would create"
    lines = [
        f"{verb} {result.created} deletion records in bucket {result.bucket} "
        f"({result.due} subjects due, {result.skipped} skipped: already open) "
        f"in {result.elapsed_s:.1f}s"
    ]
    if result.held:
        lines.append(f"  {result.held} held back: on legal hold (see 'hold list')")
    within = f"in this bucket within the last {result.cooloff_days} days (rejection_cooloff_days)"
    if result.rejected_recently:
        lines.append(f"  {result.rejected_recently} held back: rejected {within}")
    if result.excluded_recently:
        lines.append(f"  {result.excluded_recently} held back: excluded from a batch {within}")
    emit(result, lines, executed=execute)
    return result
