import click

from compliance.deletion.batches import DEFAULT_MAX_BATCH_SIZE, create_deletion_batches
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import BUCKET, whole


@job_command("create-deletion-batches")
@click.option(
    "--bucket", type=BUCKET, required=True, help="The bucket whose open records are batched."
)
@click.option(
    "--max-batch-size",
    default=DEFAULT_MAX_BATCH_SIZE,
    show_default=True,
    type=whole(1, 100_000),
    help="Most records one reviewer decision covers.",
)
@execute_option
def create_batches(bucket: str, max_batch_size: int, execute: bool) -> object:
    """Group BUCKET's unbatched records into batches for review."""
    rt = runtime()
    with rt.session() as session:
        result = create_deletion_batches(
            session,
            rt.policy,
            bucket,
            actor=rt.actor,
            execute=execute,
            max_batch_size=max_batch_size,
        )
    verb = "Created" if execute else "Would create"
    line = f"{verb} {result.batches} batches holding {result.records} records in bucket {bucket}"
    if result.batch_ids:
        line += f" (ids {result.batch_ids[0]}-{result.batch_ids[-1]})"
    emit(result, [line], executed=execute)
    return result
