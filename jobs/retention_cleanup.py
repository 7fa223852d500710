import click

from compliance.ops.retention import DEFAULT_CHUNK_SIZE, retention_cleanup
from compliance.store.states import CleanupStatus
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import whole


@job_command("retention-cleanup")
@click.option("--category", help="Only this [retention.NAME] entry (default: every entry).")
@click.option(
    "--chunk-size",
    default=DEFAULT_CHUNK_SIZE,
    show_default=True,
    type=whole(1, 1_000_000),
    help="Rows deleted per commit.",
)
@execute_option
def cleanup(category: str | None, chunk_size: int, execute: bool) -> object:
    """Delete rows older than each [retention.*] entry's days (never in a retain table)."""
    rt = runtime()
    datamap = rt.datamap  # checks the policy against the application database first
    with rt.session() as session:
        result = retention_cleanup(
            session,
            rt.policy,
            rt.app_engine,
            datamap=datamap,
            actor=rt.actor,
            execute=execute,
            category=category,
            chunk_size=chunk_size,
        )
    verb = "Deleted" if execute else "Would delete"
    done = len(result.categories) - len(result.skipped)
    lines = [f"{verb} {result.rows} expired rows in {done} categor{'y' if done == 1 else 'ies'}"]
    for c in result.categories:
        if c.status in (CleanupStatus.SKIPPED, CleanupStatus.FAILED):
            lines.append(f"  {c.name}: {c.status}: {c.message}")
        else:
            lines.append(f"  {c.name}: {c.rows} rows of {c.table} older than {c.days} days")
        if c.protected_rows:
            lines.append(
                f"  {c.name}: {c.protected_rows} old rows kept: subjects on legal hold "
                "or awaiting an access export"
            )
    summary = {
        "executed": execute,
        "rows": result.rows,
        "categories": result.categories,
    }
    emit(summary, lines, executed=execute)
    if result.failed:
        raise JobFailed(f"{len(result.failed)} retention categories failed; see the log, rerun")
    return summary
