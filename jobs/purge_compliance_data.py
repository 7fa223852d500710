import click

from compliance.deletion.purge import purge_compliance_data
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import BUCKET


@job_command("purge-compliance-data")
@click.option(
    "--bucket", type=BUCKET, required=True, help="The bucket whose finished bookkeeping is removed."
)
@execute_option
def purge(bucket: str, execute: bool) -> object:
    """Remove applied or rejected records, empty batches and orphan profiles of BUCKET."""
    rt = runtime()
    with rt.session() as session:
        result = purge_compliance_data(session, rt.policy, bucket, actor=rt.actor, execute=execute)
    verb = "Removed" if execute else "Would remove"
    emit(
        result,
        [
            f"{verb} {result.records} deletion records, {result.batches} batches and "
            f"{result.profiles} orphan profiles ({bucket})"
        ],
        executed=execute,
    )
    return result
