import click

from compliance.deletion.apply import (
    DEFAULT_CHUNK_SIZE,
    MAX_WORKERS,
    apply_deletions,
    retry_blocked,
)
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
    "retry_blocked_",
    is_flag=True,
    help="Try again the records a foreign key blocked (they otherwise wait for a policy change).",
)
@execute_option
def apply(
    bucket: str | None, chunk_size: int, workers: int, retry_blocked_: bool, execute: bool
) -> object:
    """Erase the data of accepted records whose scheduled time has come."""
    rt = runtime()
    with rt.session() as session:
        retried = (
            retry_blocked(session, actor=rt.actor, execute=execute, bucket=bucket)
            if retry_blocked_
            else 0
        )
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
    if retried:
        lines.append(f"  {retried} blocked records tried again (--retry-blocked)")
    if result.blocked:
        lines.append(
            f"  {result.blocked} records blocked by a foreign key from kept data; they wait "
            "until the policy changes or --retry-blocked (see deletion_error)"
        )
    if result.awaiting_export:
        lines.append(
            f"  {result.awaiting_export} records wait: their subject has an open access "
            "request, whose export is built first"
        )
    lines += [f"  record {e['record_id']}: {e['error']}" for e in result.errors]
    emit(result, lines, executed=execute)
    if result.failed:
        raise JobFailed(f"{result.failed} records failed; see deletion_error, then rerun")
    return result
