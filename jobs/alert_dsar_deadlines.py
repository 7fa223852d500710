from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import click

from compliance.ops.alerts import (
    ALERT_TARGET,
    DEFAULT_WITHIN_DAYS,
    Alert,
    OutboxSlack,
    alert_client,
    already_posted_reason,
    plan_dsar_deadline_alert,
    post_alerts,
    today_utc,
)
from compliance.store.states import AlertStatus
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime
from jobs.params import DAY, DAYS


def today_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--today",
        type=DAY,
        help="Act as if today were this UTC date (backfill, testing). Default: today.",
    )(func)


def force_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--force",
        is_flag=True,
        help="Post again even if this alert was already posted for the day.",
    )(func)


def alert_lines(
    alerts: Sequence[Alert], executed: bool, day: date, client: object = None
) -> list[str]:
    """What was (or would be) posted where, why anything was skipped, and where Slack is not."""
    lines = [client.note] if isinstance(client, OutboxSlack) else []
    for alert in alerts:
        if alert.status == AlertStatus.SKIPPED:
            lines.append(f"{alert.target}: skipped, {alert.reason}")
            continue
        assert alert.message is not None
        if alert.status == AlertStatus.FAILED:
            lines.append(
                f"{alert.target}: FAILED to post to {alert.message.channel}: {alert.reason}"
            )
            continue
        verb = "posted to" if executed else "would post to"
        lines.append(f"{alert.target}: {verb} {alert.message.channel}:")
        lines += [f"    {line}" for line in alert.message.text.splitlines()]
    if any(
        a.status == AlertStatus.SKIPPED and a.reason == already_posted_reason(day) for a in alerts
    ):
        lines.append("Alerts go out once a day; re-run with --force to post them again.")
    return lines


@job_command("alert-dsar-deadlines")
@click.option(
    "--within-days",
    default=DEFAULT_WITHIN_DAYS,
    show_default=True,
    type=DAYS,
    help="Also list open requests due within this many days (overdue ones always).",
)
@today_option
@force_option
@execute_option
def alert_deadlines(within_days: int, today: datetime | None, force: bool, execute: bool) -> object:
    """Tell the DSAR channel about open requests that are overdue or due soon (once a day)."""
    rt = runtime()
    day: date = today.date() if today else today_utc()
    # No token: exit 2 before anything (in demo mode the outbox stands in for Slack).
    client = alert_client(rt.policy) if execute else None
    with rt.session() as session:
        alert = plan_dsar_deadline_alert(session, rt.policy, day, within_days, force=force)
        if client is not None:
            post_alerts(
                session, client, [alert], actor=rt.actor, target_type=ALERT_TARGET, today=day
            )
    summary = {"today": day.isoformat(), "executed": execute, "alert": alert}
    emit(summary, alert_lines([alert], execute, day, client), executed=execute)
    if alert.status == AlertStatus.FAILED:
        raise JobFailed(f"Slack refused the DSAR deadline alert: {alert.reason}")
    return summary
