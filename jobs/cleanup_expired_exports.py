from compliance.dsar.cleanup import cleanup_expired_exports
from jobs.cli import emit, execute_option, job_command, runtime


@job_command("cleanup-expired-exports")
@execute_option
def cleanup(execute: bool) -> object:
    """Delete export files (export-user-data's too) and delivery links older than
    [retention.dsar_exports] days."""
    rt = runtime()
    with rt.session() as session:
        result = cleanup_expired_exports(session, rt.policy, actor=rt.actor, execute=execute)
    verb = "Deleted" if execute else "Would delete"
    line = f"{verb} {result.exports} export files and {result.deliveries} delivery links"
    if result.user_exports:
        line += f", {result.user_exports} export-user-data files"
    if result.temp_files:
        line += f", and {result.temp_files} half-written exports of killed runs"
    emit(result, [line], executed=execute)
    return result
