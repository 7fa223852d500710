from dataclasses import asdict

from compliance.audit.anchor import check_anchor
from compliance.audit.chain import verify_chain
from jobs.cli import JobFailed, emit, job_command, runtime


@job_command("verify-audit-log", mutating=False)
def verify() -> object:
    """Walk the audit trail's hash chain, name the first broken link, check the latest anchor."""
    rt = runtime()
    anchor_file = rt.policy.audit.anchor_file
    with rt.session() as session:
        check = verify_chain(session)
        anchored = check_anchor(session, anchor_file)
    summary = {**asdict(check), "anchor": anchored.anchor, "anchor_problem": anchored.problem}
    if not check.ok:
        emit(summary, [f"Audit log BROKEN after {check.checked} good events: {check.problem}"])
        raise JobFailed(check.problem or "audit chain broken")
    if not anchored.ok:
        emit(summary, [f"Audit log BROKEN: {anchored.problem}"])
        raise JobFailed(anchored.problem or "audit log does not match its anchor")
    lines = [f"Audit log intact: {check.checked} events verified"]
    if anchored.anchor is not None:
        lines.append(
            f"Matches the anchor of {anchored.anchor.anchored_at.isoformat()} "
            f"({anchored.anchor.count} events up to event {anchored.anchor.event_id})"
        )
    elif anchor_file is None:
        lines.append("No [audit] anchor_file: events cut off the end would go unnoticed")
    else:
        lines.append(f"No anchor in {anchor_file} yet; run anchor-audit-log --execute")
    emit(summary, lines)
    return summary
