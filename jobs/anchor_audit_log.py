import os

from compliance.audit.anchor import execute_anchor, plan_anchor, slack_poster
from compliance.ops.alerts import TOKEN_ENV, make_slack_client, route_channel
from jobs.cli import JobFailed, emit, execute_option, job_command, runtime


@job_command("anchor-audit-log")
@execute_option
def anchor(execute: bool) -> object:
    """Write the audit chain's head to [audit] anchor_file and post it to Slack.

    Run it after the jobs of the day (or hourly): verify-audit-log then finds any event
    up to this anchor that is later removed, cut off or rewritten.
    """
    rt = runtime()
    policy = rt.policy
    channel = policy.audit.ops_channel or policy.slack.dsar_channel
    slack = bool(channel and os.environ.get(TOKEN_ENV, "").strip())
    routed = route_channel(policy.slack, channel) if slack and channel else None
    with rt.session() as session:
        plan = plan_anchor(session, policy.audit.anchor_file, routed)
        head = plan.anchor
        where = f"{plan.file}" + (f" and Slack {routed}" if routed else "")
        if not execute:
            summary = {"anchor": head, "file": str(plan.file), "slack_channel": routed}
            lines = [f"Would anchor {head.count} events up to event {head.event_id} to {where}"]
            if not routed:
                lines.append(f"Slack: not configured ({TOKEN_ENV} or a channel missing)")
            emit(summary, lines, executed=False)
            return summary
        post = slack_poster(make_slack_client()) if routed else None
        result = execute_anchor(session, plan, actor=rt.actor, post=post)
    summary = {
        "anchor": result.anchor,
        "file": str(result.file),
        "slack_channel": result.slack_channel,
        "slack_ts": result.slack_ts,
        "slack_error": result.slack_error,
    }
    emit(summary, [f"Anchored {head.count} events up to event {head.event_id} to {where}"])
    if result.slack_error:
        raise JobFailed(f"the anchor is in {result.file}, but {result.slack_error}")
    return summary
