import click

from compliance.deletion.replay import replay_erasures
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import DAY


@job_command("replay-erasures")
@click.option(
    "--since",
    required=True,
    type=DAY,
    help="Date (UTC) the restored backup was taken: erasures from then on are redone.",
)
@execute_option
def replay(since: object, execute: bool) -> object:
    """Erase again, after a backup restore, every subject erased since SINCE (holds still win)."""
    rt = runtime()
    day = since.date()  # type: ignore[attr-defined]
    with rt.session() as session:
        result = replay_erasures(session, rt.datamap, since=day, actor=rt.actor, execute=execute)
    verb = "Replayed" if execute else "Would replay"
    lines = [
        f"{verb} {result.erasures - result.held} erasures applied since {day.isoformat()}"
        + (f" ({result.held} subjects now on legal hold left alone)" if result.held else "")
    ]
    lines += [f"  {table}: {n} rows" for table, n in sorted(result.rows.items())]
    emit(result, lines, executed=execute)
    return result
