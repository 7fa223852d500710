import click

from compliance.dsar.processing import ProcessResult, process_dsar_requests
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import download_url_option, whole


@job_command("process-dsar-requests", concurrent=True)  # workers claim, no lock
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=whole(1, 1000),
    help="Requests claimed per round.",
)
@download_url_option
@execute_option
def process(limit: int, download_url: str, execute: bool) -> object:
    """Build access exports and send their links; schedule erasures, complete applied ones.

    Links go out with [dsar] auto_deliver (the default) when the policy has an [smtp]
    section. Workers may run side by side: on PostgreSQL each claims what the others have not.
    """
    rt = runtime()
    with rt.session() as session:
        result = process_dsar_requests(
            session, rt.datamap, actor=rt.actor, execute=execute, limit=limit,
            download_url=download_url,
        )  # fmt: skip
    lines = _done(result) if execute else _planned(result)
    if result.delivery_off:
        lines.append(f"No links sent: {result.delivery_off}")
    emit(result, lines, executed=execute)
    if result.failed:
        raise JobFailed(f"{len(result.failed)} requests failed; fix the cause, then retry-dsar")
    return result


def _done(result: ProcessResult) -> list[str]:
    lines = [
        f"Claimed {result.claimed} requests: {result.exported} exported, "
        f"{result.erasure_scheduled} erasures scheduled, {len(result.failed)} failed",
        f"Completed: {', '.join(result.completed) or 'none'}",
    ]
    if result.delivered:
        lines.append(f"Links sent: {', '.join(result.delivered)}")
    if result.ready:
        lines.append(f"Ready, link not sent yet: {', '.join(result.ready)}")
    lines += [
        f"  {ref}: the link could not be sent: {error}"
        for ref, error in sorted(result.undelivered.items())
    ]
    lines += [
        f"  {ref} failed an attempt; next attempt at {when}"
        for ref, when in sorted(result.retrying.items())
    ]
    if result.waiting:
        lines.append(f"Waiting for their deletion records or systems: {', '.join(result.waiting)}")
    lines += [f"  {ref} failed: {error}" for ref, error in sorted(result.failed.items())]
    if result.keys_hashed:
        lines.append(f"Kept the keys of {result.keys_hashed} erased subjects only as a keyed hash")
    if result.keys_waiting:
        lines.append(_keys_waiting(result.keys_waiting))
    if result.keys_not_hashed:
        lines.append(f"Keys not hashed: {result.keys_not_hashed}")
    return lines


def _keys_waiting(count: int) -> str:
    return (
        f"  {count} erased subjects keep their key as typed while a request, a deletion record "
        "(until purged) or a hold of theirs is open"
    )


def _planned(result: ProcessResult) -> list[str]:
    plan = result.plan
    assert plan is not None
    lines = [f"Would claim {len(plan.claim)} approved requests"]
    lines += [f"  {ref}" for ref in plan.claim]
    if plan.settle_access:
        lines.append(
            f"Would ask the systems of {len(plan.settle_access)} access requests again: "
            + ", ".join(plan.settle_access)
        )
    if plan.settle_told:
        lines.append(
            f"Would ask the systems of {len(plan.settle_told)} requests again: "
            + ", ".join(plan.settle_told)
        )
    if plan.complete_erasures:
        lines.append(
            f"Would complete {len(plan.complete_erasures)} applied erasures: "
            + ", ".join(plan.complete_erasures)
        )
    lines += [f"  {ref} would fail: {error}" for ref, error in plan.fail_erasures]
    if plan.hash_keys:  # those whose erasure this run completes included, as the run counts
        lines.append(
            f"Would keep the keys of {plan.hash_keys} erased subjects only as a keyed hash"
        )
    if plan.hash_keys_waiting:
        lines.append(_keys_waiting(plan.hash_keys_waiting))
    if plan.hash_keys_refused:
        lines.append(f"Keys not hashed: {plan.hash_keys_refused}")
    if plan.delivery_off is None:
        lines.append(
            f"Would send the links of {len(plan.deliver)} ready exports"
            + (f": {', '.join(plan.deliver)}" if plan.deliver else "")
            + (" and of the exports built now" if plan.claim_access or plan.settle_access else "")
        )
    return lines
