import click

from compliance.deletion.apply import DEFAULT_CHUNK_SIZE, apply_deletions
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
@execute_option
def apply(bucket: str | None, chunk_size: int, execute: bool) -> object:
    """Erase the data of accepted records whose scheduled time has come."""
    rt = runtime()
    with rt.session() as session:
        result = apply_deletions(
            session,
            rt.datamap,
            actor=rt.actor,
            execute=execute,
            bucket=bucket,
            chunk_size=chunk_size,
        )
    if execute:
        lines = [f"Applied {result.applied} of {result.due} due records, {result.failed} failed"]
    else:
        lines = [f"Would apply {result.due} due records"]
    lines += [f"  {table}: {n} rows" for table, n in sorted(result.rows.items())]
    lines += [f"  record {e['record_id']}: {e['error']}" for e in result.errors]
    emit(result, lines, executed=execute)
    if result.failed:
        raise JobFailed(f"{result.failed} records failed; see deletion_error, then rerun")
    return result
