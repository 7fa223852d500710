from compliance.audit.chain import verify_chain
from jobs.cli import JobFailed, emit, job_command, runtime


@job_command("verify-audit-log", mutating=False)
def verify() -> object:
    """Walk the audit trail's hash chain and name the first broken link."""
    rt = runtime()
    with rt.session() as session:
        check = verify_chain(session)
    if check.ok:
        emit(check, [f"Audit log intact: {check.checked} events verified"])
        return check
    emit(check, [f"Audit log BROKEN after {check.checked} good events: {check.problem}"])
    raise JobFailed(check.problem or "audit chain broken")
