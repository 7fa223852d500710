"""scan-personal-data: where the SQL systems hold personal data the policy misses."""

from functools import partial

import click

from compliance.discovery.findings import (
    FindingsPlan,
    plan_findings_record,
    scan_channel,
    store_scan,
)
from compliance.discovery.sampling import DEFAULT_SAMPLE, MAX_SAMPLE
from compliance.discovery.scan import report_data, report_lines, scan_personal_data
from compliance.ops.alerts import alert_client
from compliance.store.states import AlertStatus
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import whole


@job_command("scan-personal-data")
@click.option("--system", help="Only this SQL system (default: every system of the policy).")
@click.option(
    "--sample",
    default=DEFAULT_SAMPLE,
    show_default=True,
    type=whole(1, MAX_SAMPLE),
    help="Rows sampled per table or view.",
)
@execute_option
def scan(system: str | None, sample: int, execute: bool) -> object:
    """Read each SQL system's schema and a bounded sample; report personal data the policy
    does not cover (exit 1), leaves as it is, retains or keeps out of access exports.

    Read only: it never writes to an application database. --execute stores the findings
    (counts and recogniser names, never a value) for the Data map page and alerts the ops
    channel when a new uncovered column appears."""
    rt = runtime()
    report = scan_personal_data(rt.policy, system=system, sample=sample)
    with rt.session() as session:
        if execute:
            make_client = partial(alert_client, rt.policy)
            plan = store_scan(session, rt.policy, report, actor=rt.actor, make_client=make_client)
        else:
            plan = plan_findings_record(session, rt.policy, report)
    lines = report_lines(report) + _outcome(plan, execute, scan_channel(rt.policy))
    emit({**report_data(report), "executed": execute, "alert": plan.alert.status}, lines)
    if report.failed:
        raise JobFailed("; ".join(report.problems))
    return {"executed": execute, "systems": plan.counts, "alert": plan.alert.status}


def _outcome(plan: FindingsPlan, execute: bool, channel: str | None) -> list[str]:
    stored = ", ".join(plan.systems) or "no system"
    news = f"{len(plan.new_uncovered)} new uncovered column(s) to {channel}"
    if not execute:
        alert = f" and alert {news}" if plan.alert.status == AlertStatus.DUE else ""
        return [f"[DRY RUN] Would store the findings of {stored}{alert}. Nothing was stored; "
                "re-run with --execute to store them."]  # fmt: skip
    lines = [f"Stored the findings of {stored}."]
    if plan.alert.status != AlertStatus.SKIPPED:
        reason = f" ({plan.alert.reason})" if plan.alert.reason else ""
        lines.append(f"Alert {plan.alert.status}: {news}{reason}")
    return lines
