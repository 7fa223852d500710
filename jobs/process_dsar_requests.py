import click

from compliance.dsar.processing import process_dsar_requests
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import whole


@job_command("process-dsar-requests", concurrent=True)  # workers claim, no lock
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=whole(1, 1000),
    help="Requests claimed per round.",
)
@execute_option
def process(limit: int, execute: bool) -> object:
    """Build access exports and schedule erasures for approved requests; complete applied ones.

    Workers may run side by side: on PostgreSQL each claims what the others have not.
    """
    rt = runtime()
    with rt.session() as session:
        result = process_dsar_requests(
            session, rt.datamap, actor=rt.actor, execute=execute, limit=limit
        )
    if execute:
        lines = [
            f"Claimed {result.claimed} requests: {result.exported} exported, "
            f"{result.erasure_scheduled} erasures scheduled, {len(result.failed)} failed",
            f"Completed: {', '.join(result.completed) or 'none'}",
        ]
        lines += [
            f"  {ref} failed an attempt; next attempt at {when}"
            for ref, when in sorted(result.retrying.items())
        ]
        if result.waiting:
            lines.append(f"Waiting for their deletion records: {', '.join(result.waiting)}")
    else:
        lines = [f"Would process {len(result.would_process)} approved requests"]
        lines += [f"  {ref}" for ref in result.would_process]
    lines += [f"  {ref} failed: {error}" for ref, error in sorted(result.failed.items())]
    emit(result, lines, executed=execute)
    if result.failed:
        raise JobFailed(f"{len(result.failed)} requests failed; fix the cause, then retry-dsar")
    return result
