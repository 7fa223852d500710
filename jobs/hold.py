from datetime import date

import click

from compliance.deletion.holds import (
    lift_hold,
    list_holds,
    place_hold,
    plan_lift_hold,
    plan_place_hold,
)
from compliance.dsar.subjects import resolve_subject
from compliance.roles import identify
from jobs.cli import cli, emit, execute_option, job_command, runtime
from jobs.params import DAY, ROW_ID, SUBJECT_ID, subject_type_option


@cli.group("hold")
def hold() -> None:
    """Legal holds: subjects no bucket, batch or request may erase while the hold is in force."""


@job_command("add", group=hold)
@click.option(
    "--subject-id", type=SUBJECT_ID, help="The subject's key in the application database."
)
@click.option("--email", help="Or the subject's email, looked up through [subjects].")
@subject_type_option
@click.option("--reason", required=True, help="Why the subject is held (required).")
@click.option("--by", "by", required=True, help="Email of the person placing the hold.")
@click.option(
    "--until",
    type=DAY,
    help="Last day of the hold (YYYY-MM-DD, UTC); without it the hold lasts until lifted.",
)
@execute_option
def add(
    subject_id: str | None,
    email: str | None,
    subject_type: str | None,
    reason: str,
    by: str,
    until: object,
    execute: bool,
) -> object:
    """Place a legal hold on a subject: nothing of theirs is erased until it is lifted."""
    if (subject_id is None) == (email is None):
        raise click.UsageError("give exactly one of --subject-id or --email")
    rt = runtime()
    kind = rt.policy.subject_kind(subject_type).name
    key, _ = resolve_subject(
        rt.policy, rt.app_engine, subject_id=subject_id, email=email, subject_type=kind
    )
    last: date | None = until.date() if until is not None else None  # type: ignore[attr-defined]
    with rt.session() as session:
        plan = plan_place_hold(
            session,
            subject_id=key,
            reason=reason,
            by=identify(rt.policy, by, field="by"),
            until=last,
            subject_type=kind,
        )
        placed = place_hold(session, plan) if execute else None
    span = f"until {last.isoformat()}" if last else "until lifted"
    if placed is not None:
        lines = [f"Placed legal hold {placed.id} on subject {key} ({span})"]
    else:
        lines = [f"Would place a legal hold on subject {key} ({span})"]
    if plan.already_held_by:
        held = ", ".join(str(h) for h in plan.already_held_by)
        lines.append(f"  the subject is already held by hold(s) {held}")
    emit({"plan": plan, "hold": placed, "executed": execute}, lines, executed=execute)
    # What job_runs keeps: no reason (free text) and no subject.
    return {"hold_id": placed.id if placed else None, "executed": execute}


@job_command("remove", group=hold)
@click.argument("hold_id", type=ROW_ID)
@click.option("--reason", required=True, help="Why the hold is lifted (required).")
@click.option("--by", "by", required=True, help="Email of the person lifting the hold.")
@execute_option
def remove(hold_id: int, reason: str, by: str, execute: bool) -> object:
    """Lift legal hold HOLD_ID: the subject's data may be erased again by later decisions."""
    rt = runtime()
    with rt.session() as session:
        plan = plan_lift_hold(
            session, hold_id, reason=reason, by=identify(rt.policy, by, field="by")
        )
        lifted = lift_hold(session, plan) if execute else None
    verb = "Lifted" if lifted is not None else "Would lift"
    emit(
        {"plan": plan, "hold": lifted, "executed": execute},
        [f"{verb} legal hold {hold_id} on subject {plan.subject_id}"],
        executed=execute,
    )
    return {"hold_id": hold_id, "executed": execute}


@job_command("list", group=hold, mutating=False)
@click.option("--all", "show_all", is_flag=True, help="Also lifted and ended holds.")
def list_(show_all: bool) -> object:
    """List the legal holds in force (with --all, every hold ever placed)."""
    rt = runtime()
    with rt.session() as session:
        holds = list_holds(session, active_only=not show_all)
    lines = [
        f"{h.id}\tsubject {h.subject_id}\t{'active' if h.active else 'ended'}\t"
        f"placed {h.placed_at:%Y-%m-%d} by {h.placed_by}\t"
        f"until {h.until.isoformat() if h.until else 'lifted'}\t{h.reason}"
        for h in holds
    ] or ["No legal holds in force."]
    emit({"holds": holds}, lines)
    return {"holds": len(holds)}
