"""Slack alerts, driven through the CLI with the real slack-sdk client against a local stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.records import add_records
from compliance.deletion.review import review_batch
from compliance.dsar.mailer import read_outbox
from compliance.store.models import AuditEvent, DsarRequest, JobRun
from tests.conftest import DEMO_POLICY, DPO, Deployment
from tests.slack_stub import SlackStub, rate_limited

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# The demo policy: stale_support_tickets alerts #privacy-ops on the 1st and 15th (cc
# @dpo-team), inactive_accounts on the 1st only; closed_accounts has no channel.
PRODUCTION = DEMO_POLICY.replace("production = false", "production = true").replace(
    'ops_alert_days_of_month = [1]\nops_handle = "@dpo-team"',
    'ops_alert_days_of_month = [1]\nops_handle = "@accounts"',
)
PRODUCTION = PRODUCTION.replace(
    'rejection_cooloff_days = 90\nops_channel = "#privacy-ops"',
    'rejection_cooloff_days = 90\nops_channel = "#accounts-ops"',
)
assert "#accounts-ops" in PRODUCTION and "@accounts" in PRODUCTION


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


def slack_env(stub: SlackStub) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": stub.base_url}


def pending_batches(d: Deployment, bucket: str, subjects: int, batch_size: int) -> list[int]:
    """Open records for `subjects` subjects and batch them, as the jobs would."""
    with d.session() as s:
        ids = [f"{bucket[:3]}-{i}" for i in range(subjects)]
        add_records(s, bucket, ids, subject_type="default", actor="test", scheduled_at=NOW, now=NOW)
        s.commit()
        result = create_deletion_batches(
            s, d.policy(), bucket, actor="test", execute=True, max_batch_size=batch_size
        )
    return list(result.batch_ids)


def alert(d: Deployment, stub: SlackStub, *args: str):
    return d.run("alert-unreviewed-batches", *args, env=slack_env(stub))


def test_on_an_alert_day_each_bucket_with_pending_batches_gets_one_message(
    deployment: Deployment, slack: SlackStub
) -> None:
    deployment.write_policy(PRODUCTION)
    pending_batches(deployment, "stale_support_tickets", subjects=5, batch_size=2)
    pending_batches(deployment, "inactive_accounts", subjects=1, batch_size=200)
    pending_batches(deployment, "closed_accounts", subjects=4, batch_size=200)

    result = alert(deployment, slack, "--today", "2026-03-01", "--execute")

    assert result.exit_code == 0, result.output
    posts = {p.channel: p for p in slack.posts()}
    assert set(posts) == {"#privacy-ops", "#accounts-ops"}
    stale = posts["#privacy-ops"]
    assert "3 deletion batches (5 records)" in stale.text
    assert "bucket stale_support_tickets" in stale.text
    assert "http://localhost:8501/deletion_batches?bucket=stale_support_tickets" in stale.text
    assert "cc @dpo-team" in stale.text
    fields = [f["text"] for f in stale.blocks[0]["fields"]]
    assert fields == [
        "*Bucket*\nstale_support_tickets",
        "*Pending batches*\n3",
        "*Records*\n5",
    ]
    block_text = json.dumps(stale.blocks)
    assert "<http://localhost:8501/deletion_batches?bucket=stale_support_tickets|" in block_text
    assert "cc @dpo-team" in block_text
    accounts = posts["#accounts-ops"]
    assert "1 deletion batch (1 record)" in accounts.text
    assert "cc @accounts" in accounts.text
    assert {p.authorization for p in slack.posts()} == {"Bearer xoxb-test-token"}
    assert "closed_accounts: skipped, no ops_channel configured" in result.output
    with deployment.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "alert.posted")).all()
    assert {(e.target_id, e.details["channel"], e.actor) for e in events} == {
        ("stale_support_tickets", "#privacy-ops", "test-runner"),
        ("inactive_accounts", "#accounts-ops", "test-runner"),
    }


def test_only_buckets_whose_alert_day_it_is_are_posted(
    deployment: Deployment, slack: SlackStub
) -> None:
    deployment.write_policy(PRODUCTION)
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    pending_batches(deployment, "inactive_accounts", subjects=2, batch_size=200)

    on_15th = alert(deployment, slack, "--today", "2026-04-15", "--execute")
    assert on_15th.exit_code == 0, on_15th.output
    assert [p.channel for p in slack.posts()] == ["#privacy-ops"]
    assert "inactive_accounts: skipped, not an alert day (day 15; alert days: 1)" in on_15th.output

    on_2nd = alert(deployment, slack, "--today", "2026-04-02", "--execute")
    assert on_2nd.exit_code == 0, on_2nd.output
    assert len(slack.posts()) == 1  # nothing new on a day no bucket alerts


def test_outside_production_every_alert_goes_to_the_test_channel(
    deployment: Deployment, slack: SlackStub
) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    pending_batches(deployment, "inactive_accounts", subjects=2, batch_size=200)

    result = alert(deployment, slack, "--today", "2026-03-01", "--execute")

    assert result.exit_code == 0, result.output
    assert [p.channel for p in slack.posts()] == ["#privacy-desk-test", "#privacy-desk-test"]
    assert all(p.text.startswith("[test, for #privacy-ops] ") for p in slack.posts())


def test_reviewed_batches_are_not_pending_and_nothing_is_posted(
    deployment: Deployment, slack: SlackStub
) -> None:
    (batch_id,) = pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=9)
    with deployment.session() as s:
        review_batch(s, batch_id, "accept", reviewer=DPO, execute=True)

    result = alert(deployment, slack, "--today", "2026-03-01", "--execute")

    assert result.exit_code == 0, result.output
    assert slack.calls == []
    assert "stale_support_tickets: skipped, nothing pending review" in result.output


def test_a_dry_run_shows_the_message_and_posts_nothing(
    deployment: Deployment, slack: SlackStub
) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=3, batch_size=200)

    result = deployment.run(
        "alert-unreviewed-batches", "--today", "2026-03-15", env={"SLACK_API_URL": slack.base_url}
    )

    assert result.exit_code == 0, result.output
    assert slack.calls == []
    assert "[DRY RUN] stale_support_tickets: would post to #privacy-desk-test:" in result.output
    assert "1 deletion batch (3 records) in bucket stale_support_tickets" in result.output
    assert "Re-run with --execute" in result.output


def test_json_summary_carries_the_blocks_it_would_post(deployment: Deployment) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=3, batch_size=200)

    result = deployment.run("alert-unreviewed-batches", "--today", "2026-03-15", "--json")

    assert result.exit_code == 0, result.output
    alerts = {a["target"]: a for a in json.loads(result.stdout)["alerts"]}
    assert alerts["stale_support_tickets"]["status"] == "due"
    assert alerts["stale_support_tickets"]["message"]["blocks"][0]["type"] == "section"
    assert alerts["closed_accounts"]["reason"] == "no ops_channel configured"


def test_without_a_token_posting_is_refused_with_exit_2(
    deployment: Deployment, slack: SlackStub
) -> None:
    deployment.write_policy(DEMO_POLICY.replace("demo_mode = true", "demo_mode = false"))
    pending_batches(deployment, "stale_support_tickets", subjects=3, batch_size=200)

    result = deployment.run(
        "alert-unreviewed-batches",
        "--today",
        "2026-03-01",
        "--execute",
        env={"SLACK_BOT_TOKEN": None, "SLACK_API_URL": slack.base_url},
    )

    assert result.exit_code == 2
    assert "SLACK_BOT_TOKEN is not set" in result.output
    assert "Traceback" not in result.output
    assert slack.calls == []


def test_in_demo_mode_without_a_token_the_alert_is_written_to_the_outbox_once_a_day(
    deployment: Deployment, slack: SlackStub
) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=3, batch_size=200)
    no_token = {"SLACK_BOT_TOKEN": None, "SLACK_API_URL": slack.base_url}

    result = deployment.run("alert-unreviewed-batches", "--today", "2026-03-01", "--execute",
                            env=no_token)  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Slack is not configured (SLACK_BOT_TOKEN is not set)" in result.output
    assert slack.calls == []
    (written,) = read_outbox(deployment.policy().smtp.outbox)
    assert written.to == "#privacy-desk-test"
    assert written.subject.startswith(
        "Slack alert for #privacy-desk-test: [test, for #privacy-ops]"
    )
    assert written.text.startswith("Slack is not configured (SLACK_BOT_TOKEN is not set)")
    assert "1 deletion batch (3 records) in bucket stale_support_tickets wait" in written.text
    assert "http://localhost:8501/deletion_batches?bucket=stale_support_tickets" in written.links
    rerun = deployment.run("alert-unreviewed-batches", "--today", "2026-03-01", "--execute",
                           env=no_token)  # fmt: skip
    assert rerun.exit_code == 0, rerun.output
    assert "skipped, already posted for 2026-03-01" in rerun.output
    assert len(read_outbox(deployment.policy().smtp.outbox)) == 1


def test_a_slack_error_on_one_bucket_does_not_stop_the_next(
    deployment: Deployment, slack: SlackStub
) -> None:
    deployment.write_policy(PRODUCTION)
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    pending_batches(deployment, "inactive_accounts", subjects=2, batch_size=200)
    slack.fail_channel("#privacy-ops", "channel_not_found")

    result = alert(deployment, slack, "--today", "2026-03-01", "--execute")

    assert result.exit_code == 1
    assert [p.channel for p in slack.posts()] == ["#privacy-ops", "#accounts-ops"]
    assert "stale_support_tickets: FAILED to post to #privacy-ops" in result.output
    assert "channel_not_found" in result.output
    assert "inactive_accounts: posted to #accounts-ops" in result.output
    with deployment.session() as s:
        posted = s.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "alert.posted")
        ).all()
        run = s.scalars(select(JobRun).where(JobRun.job == "alert-unreviewed-batches")).one()
    assert posted == ["inactive_accounts"]
    assert run.status == "failed"


def test_a_rate_limited_post_is_retried_and_lands_once(
    deployment: Deployment, slack: SlackStub
) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    slack.answer_next(rate_limited(retry_after=0))

    result = alert(deployment, slack, "--today", "2026-03-15", "--execute")

    assert result.exit_code == 0, result.output
    first, second = slack.posts()
    assert (first.channel, first.text) == (second.channel, second.text)
    with deployment.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "alert.posted")).all()
    assert len(events) == 1


def test_a_rate_limit_that_never_lifts_fails_that_alert_with_exit_1(
    deployment: Deployment, slack: SlackStub
) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    slack.answer_next(*[rate_limited(retry_after=0)] * 4)  # the first try and 3 retries

    result = alert(deployment, slack, "--today", "2026-03-15", "--execute")

    assert result.exit_code == 1
    assert len(slack.posts()) == 4
    assert "Slack said ratelimited (HTTP 429)" in result.output


def test_a_rerun_the_same_day_posts_nothing_new_unless_forced(
    deployment: Deployment, slack: SlackStub
) -> None:
    deployment.write_policy(PRODUCTION)
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    pending_batches(deployment, "inactive_accounts", subjects=2, batch_size=200)
    first = alert(deployment, slack, "--today", "2026-03-01", "--execute")
    assert first.exit_code == 0, first.output
    assert len(slack.posts()) == 2

    rerun = alert(deployment, slack, "--today", "2026-03-01", "--execute")

    assert rerun.exit_code == 0, rerun.output
    assert len(slack.posts()) == 2  # a cron retry does not spam the channel
    assert "stale_support_tickets: skipped, already posted for 2026-03-01" in rerun.output
    assert "inactive_accounts: skipped, already posted for 2026-03-01" in rerun.output
    assert "--force" in rerun.output

    forced = alert(deployment, slack, "--today", "2026-03-01", "--force", "--execute")

    assert forced.exit_code == 0, forced.output
    assert sorted(p.channel for p in slack.posts()[2:]) == ["#accounts-ops", "#privacy-ops"]
    with deployment.session() as s:
        days = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "alert.posted")
        ).all()
    assert [d["day"] for d in days] == ["2026-03-01"] * 4


def test_the_next_alert_day_posts_again(deployment: Deployment, slack: SlackStub) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)

    assert alert(deployment, slack, "--today", "2026-03-01", "--execute").exit_code == 0
    assert alert(deployment, slack, "--today", "2026-03-15", "--execute").exit_code == 0

    assert len(slack.posts()) == 2


def test_a_failed_post_is_not_counted_as_posted_and_the_rerun_sends_it(
    deployment: Deployment, slack: SlackStub
) -> None:
    deployment.write_policy(PRODUCTION)
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    pending_batches(deployment, "inactive_accounts", subjects=2, batch_size=200)
    slack.fail_channel("#privacy-ops", "channel_not_found")
    assert alert(deployment, slack, "--today", "2026-03-01", "--execute").exit_code == 1
    slack.heal_channel("#privacy-ops")

    rerun = alert(deployment, slack, "--today", "2026-03-01", "--execute")

    assert rerun.exit_code == 0, rerun.output
    assert [p.channel for p in slack.posts()] == ["#privacy-ops", "#accounts-ops", "#privacy-ops"]
    assert "inactive_accounts: skipped, already posted for 2026-03-01" in rerun.output


def test_a_dry_run_after_posting_says_the_alert_is_already_out(
    deployment: Deployment, slack: SlackStub
) -> None:
    pending_batches(deployment, "stale_support_tickets", subjects=2, batch_size=200)
    assert alert(deployment, slack, "--today", "2026-03-15", "--execute").exit_code == 0

    dry = deployment.run("alert-unreviewed-batches", "--today", "2026-03-15")

    assert dry.exit_code == 0, dry.output
    assert "stale_support_tickets: skipped, already posted for 2026-03-15" in dry.output
    assert len(slack.posts()) == 1


# ---------------------------------------------------------------- DSAR deadlines

TODAY = "2026-03-10"


def dsar(
    reference: str, kind: str, status: str, due: str, extended: str | None = None
) -> DsarRequest:
    at = lambda day: datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)  # noqa: E731
    return DsarRequest(
        reference=reference,
        kind=kind,
        subject_id=reference[-3:],
        subject_email=f"person{reference[-3:]}@example.org",
        status=status,
        requested_by="support@example.com",
        requested_at=at("2026-02-01"),
        due_at=at(due),
        extended_due_at=at(extended) if extended else None,
        latest_due_at=at("2026-05-01"),
    )


@pytest.fixture
def dsars(deployment: Deployment) -> Deployment:
    with deployment.session() as s:
        s.add_all(
            [
                dsar("DSAR-2026-000001", "access", "pending", "2026-03-13"),  # 3 days left
                dsar("DSAR-2026-000002", "erasure", "approved", "2026-03-08"),  # 2 days late
                dsar("DSAR-2026-000003", "access", "pending", "2026-03-30"),  # 20 days left
                dsar("DSAR-2026-000004", "access", "completed", "2026-03-01"),  # done
                # Extended: only the new deadline counts.
                dsar("DSAR-2026-000005", "access", "processing", "2026-03-02", "2026-03-15"),
                dsar("DSAR-2026-000006", "erasure", "failed", "2026-03-10"),  # due today
            ]
        )
        s.commit()
    return deployment


def test_open_requests_due_soon_or_overdue_are_posted_with_days_left_and_links(
    dsars: Deployment, slack: SlackStub
) -> None:
    dsars.write_policy(PRODUCTION)

    result = dsars.run("alert-dsar-deadlines", "--today", TODAY, "--execute", env=slack_env(slack))

    assert result.exit_code == 0, result.output
    (post,) = slack.posts()
    assert post.channel == "#privacy-ops"
    lines = post.text.splitlines()
    assert lines[0] == "DSAR deadlines: 1 overdue, 3 due within 7 days"
    url = "http://localhost:8501/dsar_requests?reference="
    assert lines[1:] == [
        f"DSAR-2026-000002 (erasure, approved): overdue by 2 days, due 2026-03-08 {url}"
        "DSAR-2026-000002",
        f"DSAR-2026-000006 (erasure, failed): due today, due 2026-03-10 {url}DSAR-2026-000006",
        f"DSAR-2026-000001 (access, pending): 3 days left, due 2026-03-13 {url}DSAR-2026-000001",
        f"DSAR-2026-000005 (access, processing): 5 days left, due 2026-03-15 {url}DSAR-2026-000005",
    ]
    assert len(post.blocks) == 5
    assert f"<{url}DSAR-2026-000002|DSAR-2026-000002>" in post.blocks[1]["text"]["text"]
    with dsars.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "alert.posted")).one()
    assert event.details["references"] == [
        "DSAR-2026-000002",
        "DSAR-2026-000006",
        "DSAR-2026-000001",
        "DSAR-2026-000005",
    ]
    assert "@example.org" not in json.dumps(event.details)


def test_in_demo_mode_without_a_token_the_deadline_alert_is_written_to_the_outbox(
    dsars: Deployment,
) -> None:
    result = dsars.run("alert-dsar-deadlines", "--today", TODAY, "--execute",
                       env={"SLACK_BOT_TOKEN": None})  # fmt: skip

    assert result.exit_code == 0, result.output
    (written,) = read_outbox(dsars.policy().smtp.outbox)
    assert written.subject == (
        "Slack alert for #privacy-desk-test: [test, for #privacy-ops] "
        "DSAR deadlines: 1 overdue, 3 due within 7 days"
    )
    assert "http://localhost:8501/dsar_requests?reference=DSAR-2026-000002" in written.links
    with dsars.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "alert.posted")).one()
    assert event.details["ts"] == f"outbox:{written.name}"


def test_a_wider_window_lists_later_requests_too(dsars: Deployment, slack: SlackStub) -> None:
    result = dsars.run(
        "alert-dsar-deadlines",
        "--today",
        TODAY,
        "--within-days",
        "30",
        "--execute",
        env=slack_env(slack),
    )

    assert result.exit_code == 0, result.output
    (post,) = slack.posts()
    assert post.channel == "#privacy-desk-test"
    assert "DSAR-2026-000003 (access, pending): 20 days left" in post.text
    assert "DSAR-2026-000004" not in post.text


def test_no_deadline_in_sight_posts_nothing(deployment: Deployment, slack: SlackStub) -> None:
    result = deployment.run(
        "alert-dsar-deadlines", "--today", TODAY, "--execute", env=slack_env(slack)
    )

    assert result.exit_code == 0, result.output
    assert slack.calls == []
    assert "skipped, no open request due within 7 days or overdue" in result.output


def test_the_deadline_alert_is_posted_once_a_day_unless_forced(
    dsars: Deployment, slack: SlackStub
) -> None:
    env = slack_env(slack)
    first = dsars.run("alert-dsar-deadlines", "--today", TODAY, "--execute", env=env)
    assert first.exit_code == 0, first.output

    rerun = dsars.run("alert-dsar-deadlines", "--today", TODAY, "--execute", env=env)

    assert rerun.exit_code == 0, rerun.output
    assert len(slack.posts()) == 1
    assert f"dsar_deadlines: skipped, already posted for {TODAY}" in rerun.output

    forced = dsars.run("alert-dsar-deadlines", "--today", TODAY, "--force", "--execute", env=env)
    next_day = dsars.run("alert-dsar-deadlines", "--today", "2026-03-11", "--execute", env=env)

    assert forced.exit_code == 0 and next_day.exit_code == 0, forced.output + next_day.output
    assert len(slack.posts()) == 3
    assert slack.posts()[1].text == slack.posts()[0].text
