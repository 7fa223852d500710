import click

from compliance.deletion.apply import DEFAULT_CHUNK_SIZE, MAX_WORKERS, apply_deletions
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime


@job_command("apply-deletions")
@click.option("--bucket", help="Only this bucket (default: every bucket with accepted records).")
@click.option(
    "--chunk-size",
    default=DEFAULT_CHUNK_SIZE,
    show_default=True,
    type=int,
    help="Records per commit.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_WORKERS),
    help="Erase with this many connections at once (PostgreSQL; each record still once).",
)
@execute_option
def apply(bucket: str | None, chunk_size: int, workers: int, execute: bool) -> object:
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
            workers=workers,
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
