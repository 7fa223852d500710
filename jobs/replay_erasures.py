import click

from compliance.deletion.replay import replay_erasures
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
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
    """Erase again, after a backup restore, every subject erased since SINCE (holds still win).

    Exits 1 when a plan is refused: its links to the subject changed since it was accepted.
    """
    rt = runtime()
    day = since.date()  # type: ignore[attr-defined]
    with rt.session() as session:
        result = replay_erasures(session, rt.datamap, since=day, actor=rt.actor, execute=execute)
    verb = "Replayed" if execute else "Would replay"
    again = result.erasures - result.held - result.refused
    lines = [
        f"{verb} {again} erasures applied since {day.isoformat()}"
        + (f" ({result.held} subjects now on legal hold left alone)" if result.held else "")
    ]
    lines += [f"  {table}: {n} rows" for table, n in sorted(result.rows.items())]
    if result.refused:
        lines.append(f"  {result.refused} refused: their plan's links changed since acceptance")
        lines += [f"  plan {digest[:12]}: {error}" for digest, error in result.errors.items()]
    emit(result, lines, executed=execute)
    if result.refused:
        raise JobFailed(f"{result.refused} erasures refused: a plan's links changed; re-review")
    return result
