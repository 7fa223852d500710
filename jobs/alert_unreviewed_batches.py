from datetime import date, datetime

from compliance.ops.alerts import (
    BUCKET_TARGET,
    alert_client,
    plan_unreviewed_batch_alerts,
    post_alerts,
    today_utc,
)
from compliance.store.states import AlertStatus
from jobs.alert_dsar_deadlines import alert_lines, force_option, today_option
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime


@job_command("alert-unreviewed-batches")
@today_option
@force_option
@execute_option
def alert_unreviewed(today: datetime | None, force: bool, execute: bool) -> object:
    """Tell each bucket's ops channel, on its alert days, about batches waiting for review.

    Each bucket is alerted once a day; a rerun that day posts nothing new unless --force.
    """
    rt = runtime()
    day: date = today.date() if today else today_utc()
    # No token: exit 2 before anything (in demo mode the outbox stands in for Slack).
    client = alert_client(rt.policy) if execute else None
    with rt.session() as session:
        alerts = plan_unreviewed_batch_alerts(session, rt.policy, day, force=force)
        if client is not None:
            post_alerts(
                session, client, alerts, actor=rt.actor, target_type=BUCKET_TARGET, today=day
            )
    summary = {"today": day.isoformat(), "executed": execute, "alerts": alerts}
    emit(summary, alert_lines(alerts, execute, day, client), executed=execute)
    failed = [a.target for a in alerts if a.status == AlertStatus.FAILED]
    if failed:
        raise JobFailed(f"Slack refused the alert for {', '.join(failed)}; see the log")
    return summary
