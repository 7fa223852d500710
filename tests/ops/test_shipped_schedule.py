"""The shipped schedule, proven over time: `deploy/crontab` carries every request to done.

Sixty days of a small company's life, on SQLite and on PostgreSQL. Every simulated day,
requests arrive through the intake API (uvicorn over HTTP) and through the library calls
the dashboard makes; officers and support decide through the library, as the pages do;
and the crontab's lines run in schedule order (daily and weekly lines once, sub-daily
lines at their first and last slot) through the same click entry points cron reaches.
The clock is the library's one clock, replaced here only. The last day is the real
today: its lines run as real processes through `deploy/run-job.sh`, as cron would start
them, and one access request made that day is downloaded through the real download page
in Chromium.

Nobody types a command: at the end every access request was delivered by email, every
erasure request is completed, all within their deadlines; no job ran that the crontab
does not name; the Jobs page reports the schedule healthy; and every Progress figure
equals what this test counted itself, before and after each weekly purge.
"""

from __future__ import annotations

import calendar
import contextlib
import io
import os
import random
import re
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select, text

from compliance import clock
from compliance.dsar.api_keys import create_api_key
from compliance.dsar.decisions import review_dsar
from compliance.dsar.rectification import Correction
from compliance.dsar.requests import submit
from compliance.ops.jobruns import job_health
from compliance.ops.schedule import parse_crontab
from compliance.store.models import (
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
    ErasureTask,
    JobRun,
)
from tests.conftest import (
    ROOT,
    SHIPPED_POLICY,
    SUPPORT_STAFF,
    Deployment,
    fill_demo,
    person,
    with_mail_server,
)
from tests.slack_stub import SlackStub
from tests.smtp_server import Inbox, free_port
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

CRONTAB = ROOT / "deploy" / "crontab"
RUN_JOB = ROOT / "deploy" / "run-job.sh"
DAYS = 60
OFFICER = person("dpo@example.com")
IDENTITY = {"method": "signed_in_account", "note": "asked from the account settings page"}

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- the crontab, as written


@dataclass(frozen=True)
class CronLine:
    """One line of the crontab: five time fields and the commands it runs, in order."""

    fields: tuple[str, str, str, str, str]
    source: str  # the command text, run verbatim by sh on the real day
    commands: tuple[tuple[str, ...], ...]  # each: the job and its arguments

    def times(self, day: date) -> list[datetime]:
        """Every moment this line fires on ``day`` (UTC)."""
        minute, hour, dom, month, dow = self.fields
        cron_dow = (day.weekday() + 1) % 7  # cron: 0 is Sunday
        if day.month not in _expand(month, 1, 12) or day.day not in _expand(dom, 1, 31):
            return []
        if cron_dow not in _expand(dow, 0, 6):
            return []
        return [
            datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
            for h in _expand(hour, 0, 23)
            for m in _expand(minute, 0, 59)
        ]

    def slots(self, day: date) -> list[datetime]:
        """The moments this test runs the line: all of a daily line, a sub-daily one's ends."""
        times = self.times(day)
        return times if len(times) <= 1 else [times[0], times[-1]]


def _expand(spec: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        if part == "*":
            values |= set(range(low, high + 1))
        elif part.startswith("*/"):
            values |= set(range(low, high + 1, int(part[2:])))
        elif "-" in part:
            first, last = part.split("-")
            values |= set(range(int(first), int(last) + 1))
        else:
            values.add(int(part))
    return values


def read_crontab(path: Path = CRONTAB) -> list[CronLine]:
    lines = []
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or re.match(r"^[A-Z_]+=", stripped):
            continue
        parts = stripped.split(None, 5)
        commands = []
        for command in parts[5].split(";"):
            words = shlex.split(command.split(">>")[0])
            assert words[0] == "$J", f"a crontab command that is not a job: {command!r}"
            commands.append(tuple(words[1:]))
        lines.append(CronLine(tuple(parts[:5]), parts[5], tuple(commands)))  # type: ignore[arg-type]
    return lines


def test_the_crontab_reads_as_the_jobs_it_names() -> None:
    lines = read_crontab()
    shipped = parse_crontab(CRONTAB.read_text())  # what the Jobs page reads
    assert [c for line in lines for c in line.commands] == [(r.job, *r.arguments) for r in shipped]
    jobs = {command[0] for line in lines for command in line.commands}
    assert {"process-dsar-requests", "apply-deletions", "purge-compliance-data"} <= jobs
    every_quarter = next(line for line in lines if line.commands[0][0] == "process-dsar-requests")
    assert len(every_quarter.times(date(2026, 12, 7))) == 96
    sunday, monday = date(2026, 12, 6), date(2026, 12, 7)
    purge = next(line for line in lines if line.commands[0][0] == "purge-compliance-data")
    assert purge.times(sunday) and not purge.times(monday)


# ---------------------------------------------------------------- the simulated company


class Clock:
    """The library's clock during the simulation: a set moment, moving on with real time."""

    def __init__(self) -> None:
        self._at = datetime.now(UTC)
        self._since = time.monotonic()

    def set(self, moment: datetime) -> None:
        self._at, self._since = moment, time.monotonic()

    def __call__(self) -> datetime:
        return self._at + timedelta(seconds=time.monotonic() - self._since)


@contextlib.contextmanager
def intake_api(port: int) -> Iterator[str]:
    """The intake API in this process (so it reads the simulated clock), over real HTTP."""
    from api.app import app

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):  # bounded: at most ~10 s
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the intake API did not start"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# One request a day, by turns: access and erasure most, each other right the desk handles too.
KINDS_BY_DAY = (
    "access", "erasure", "objection", "access", "erasure", "restriction",
    "access", "erasure", "rectification", "portability",
)  # fmt: skip
# Answered by a link email (the subject downloads an export); every other kind completes.
DELIVERED_KINDS = {"access", "portability"}
KIND_FIELDS: dict[str, dict[str, Any]] = {
    "objection": {"scope": "direct_marketing"},
    "rectification": {"corrections": [{"column": "users.full_name", "value": "Ada Lovelace"}]},
}


def add_month(moment: datetime) -> datetime:
    """One calendar month later, the last day of a shorter month standing in (Art. 12(3))."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass
class Ledger:
    """What this test saw happen, from the outside: its own ground truth."""

    arrived: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # ref -> kind, when
    delivered: dict[str, datetime] = field(default_factory=dict)  # access ref -> link mail
    completed: dict[str, datetime] = field(default_factory=dict)  # other kinds' ref -> seen done
    ran: list[tuple[str, ...]] = field(default_factory=list)  # every command this test ran
    seconds: Counter[str] = field(default_factory=Counter)  # where the test's time goes
    batches: Counter[tuple[str, str]] = field(default_factory=Counter)  # (bucket, decision)
    kept: list[tuple[datetime, str]] = field(default_factory=list)  # (when, bucket) per record
    to_erase: set[tuple[str, str]] = field(default_factory=set)  # (bucket, subject) accepted
    erased: list[tuple[datetime, str]] = field(default_factory=list)  # (when, bucket) per record


@dataclass
class Company:
    deployment: Deployment
    inbox: Inbox
    api_url: str
    api_key: str
    clock: Clock
    ledger: Ledger = field(default_factory=Ledger)
    rng: random.Random = field(default_factory=lambda: random.Random(23))
    asked: set[str] = field(default_factory=set)
    seen_mail: int = 0

    # ---- the crontab's commands, through the click entry point cron reaches
    def run_job(self, command: tuple[str, ...]) -> None:
        if command[0] == "purge-compliance-data":
            check_progress(self)
        started = time.perf_counter()
        result = self.deployment.run(*command)
        self.ledger.seconds[command[0]] += time.perf_counter() - started
        self.ledger.ran.append(command)
        assert result.exit_code == 0, f"{' '.join(command)} at {self.clock()}:\n{result.output}"
        if command[0] == "apply-deletions":
            self.notice_erasures()
        self.watch()
        if command[0] == "purge-compliance-data":
            check_progress(self)

    def watch(self) -> None:
        """Note each link email as it arrives, and each erasure request as it completes."""
        for message in self.inbox.messages[self.seen_mail :]:
            found = re.search(r"personal data export \((DSAR-[\d-]+)\)", message["Subject"] or "")
            if found:
                self.ledger.delivered.setdefault(found.group(1), self.clock())
        self.seen_mail = len(self.inbox.messages)
        waiting = [r for r, (k, _) in self.ledger.arrived.items() if k not in DELIVERED_KINDS]
        waiting = [r for r in waiting if r not in self.ledger.completed]
        if waiting:
            with self.deployment.session() as s:
                done = s.scalars(
                    select(DsarRequest.reference).where(
                        DsarRequest.reference.in_(waiting), DsarRequest.status == "completed"
                    )
                ).all()
            for reference in done:
                self.ledger.completed[reference] = self.clock()

    # ---- people
    def _subject(self) -> str:
        # Active customers only: no bucket's rule proposes them within the sixty days, so the
        # request is the one thing that erases them and the count per bucket stays exact.
        since = (self.clock() - timedelta(days=365)).replace(tzinfo=None)
        with self.deployment.app_engine.connect() as conn:
            ids = (
                conn.execute(
                    text(
                        "SELECT id FROM users WHERE closed_at IS NULL AND last_login_at > :since"
                        " ORDER BY id"
                    ),
                    {"since": since},
                )
                .scalars()
                .all()
            )
        choices = [str(i) for i in ids if str(i) not in self.asked]
        subject = self.rng.choice(choices)
        self.asked.add(subject)
        return subject

    def requests_arrive(self, day: int) -> None:
        """One request a day, every kind by turns (access and erasure most), through the API
        and the desk."""
        kind = KINDS_BY_DAY[day % len(KINDS_BY_DAY)]
        subject = self._subject()
        extra = KIND_FIELDS.get(kind, {})
        if day % 4 < 2:
            response = httpx.post(
                f"{self.api_url}/v1/requests",
                json={"kind": kind, "subject_id": subject, "identity_check": IDENTITY, **extra},
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=10,
            )
            assert response.status_code == 201, response.text
            reference = response.json()["reference"]
        else:  # what the dashboard's "Log a request" form calls
            d, fixes = self.deployment, extra.get("corrections", [])
            with d.session() as s:
                reference = submit(
                    s, d.policy(), d.app_engine, kind=kind, subject_id=subject,
                    requested_by=SUPPORT_STAFF, identity_method="email_confirmation",
                    identity_check="confirmed from the address on file",
                    require_identity=True, channel="dashboard", execute=True,
                    scope=extra.get("scope"),
                    corrections=[Correction(c["value"], c["column"]) for c in fixes],
                ).request.reference  # fmt: skip
        self.ledger.arrived[reference] = (kind, self.clock())

    def officer_decides(self, day: int) -> None:
        """Approve every pending request; accept most batches, exclude one, reject some."""
        d = self.deployment
        with d.session() as s:
            pending = s.scalars(
                select(DsarRequest.reference).where(DsarRequest.status == "pending")
            ).all()
            for reference in pending:
                review_dsar(s, reference, "approve", reviewer=OFFICER, four_eyes=False,
                            policy=d.policy(), execute=True)  # fmt: skip
            batches = s.scalars(
                select(DeletionBatch).where(DeletionBatch.reviewed_status == "pending")
            ).all()
            decisions = [(b.id, b.bucket) for b in batches]
        for batch_id, bucket in decisions:
            self._decide(batch_id, bucket)
        self._accepted_erasures(pending)

    def _decide(self, batch_id: int, bucket: str) -> None:
        """Reject every fifth batch; in the others keep the first record when there are three."""
        from compliance.deletion.review import review_batch

        d, ledger = self.deployment, self.ledger
        with d.session() as s:
            records = s.execute(
                select(DeletionRecord.id, ComplianceProfile.subject_id)
                .join(ComplianceProfile)
                .where(DeletionRecord.deletion_batch_id == batch_id)
                .order_by(DeletionRecord.id)
            ).all()
            now = self.clock()
            if batch_id % 5 == 0:
                review_batch(s, batch_id, "reject", reviewer=OFFICER, reason="rule too broad",
                             execute=True, policy=d.policy())  # fmt: skip
                ledger.batches[(bucket, "rejected")] += 1
                ledger.kept += [(now, bucket)] * len(records)
                return
            kept = records[:1] if len(records) > 2 else []
            exclude = {record_id: "customer asked us to keep the account" for record_id, _ in kept}
            review_batch(s, batch_id, "accept", reviewer=OFFICER, exclude=exclude,
                         execute=True, policy=d.policy())  # fmt: skip
        ledger.batches[(bucket, "accepted")] += 1
        ledger.kept += [(now, bucket)] * len(kept)
        ledger.to_erase |= {(bucket, subject) for _, subject in records[len(kept) :]}

    def _accepted_erasures(self, approved: list[str]) -> None:
        """An approved erasure request's subject is now due to be erased, like a batch's."""
        with self.deployment.session() as s:
            subjects = s.scalars(
                select(DsarRequest.subject_id).where(
                    DsarRequest.reference.in_(approved), DsarRequest.kind == "erasure"
                )
            ).all()
        self.ledger.to_erase |= {("dsar_erasure", subject) for subject in subjects}

    def notice_erasures(self) -> None:
        """After each apply-deletions and each round of manual steps, see who is gone now.

        Gone means gone everywhere the bucket reaches: out of the product database, and no
        manual step (the newsletter tool) still waiting for the subject on System tasks. An
        inactive account anonymized at 03:00 is erased once support confirms its newsletter
        step at 11:00, and only then.
        """
        with self.deployment.app_engine.connect() as conn:
            anonymized = set(
                conn.execute(text("SELECT id FROM users WHERE full_name IS NULL")).scalars()
            )
            with_tickets = set(
                conn.execute(text("SELECT DISTINCT user_id FROM support_tickets")).scalars()
            )
        with self.deployment.session() as s:
            # Per bucket: a closed account that is also inactive is erased by closed_accounts
            # (which no manual system reaches) while inactive_accounts still waits for its
            # newsletter step.
            waiting_by_hand = set(
                (bucket, subject)
                for bucket, subject in s.execute(
                    select(DeletionRecord.bucket, ComplianceProfile.subject_id)
                    .join(ComplianceProfile)
                    .join(ErasureTask, ErasureTask.deletion_record_id == DeletionRecord.id)
                    .where(ErasureTask.system_kind == "manual", ErasureTask.status == "pending")
                )
            )
        now = self.clock()
        for bucket, subject in sorted(self.ledger.to_erase):
            key = int(subject)
            gone = (
                key not in with_tickets if bucket == "stale_support_tickets" else key in anonymized
            )
            if gone and (bucket, subject) not in waiting_by_hand:
                self.ledger.to_erase.discard((bucket, subject))
                self.ledger.erased.append((now, bucket))

    def support_confirms_manual_steps(self) -> None:
        """An officer does what a manual system asks (the System tasks page's Confirm)."""
        from compliance.systems.manual_tasks import confirm_task

        d = self.deployment
        with d.session() as s:
            waiting = s.scalars(
                select(ErasureTask.id).where(
                    ErasureTask.system_kind == "manual", ErasureTask.status == "pending"
                )
            ).all()
        for task_id in waiting:
            with d.session() as s:
                confirm_task(s, task_id, actor=OFFICER,
                             note="deleted in the newsletter tool", execute=True)  # fmt: skip
        self.notice_erasures()


# ---------------------------------------------------------------- Progress, checked


def monday(moment: datetime) -> date:
    return moment.date() - timedelta(days=moment.weekday())


def check_progress(company: Company) -> None:
    """Every Progress figure the manager sees equals what this test counted itself."""
    from compliance.reports.dsar_stats import dsar_per_month
    from compliance.reports.stats import bucket_progress, outcomes_per_week

    ledger, now = company.ledger, company.clock()
    buckets: dict[str, Counter[str]] = {}
    for (bucket, decision), n in ledger.batches.items():
        buckets.setdefault(bucket, Counter())[f"batches_{decision}"] += n
    weeks: dict[tuple[date, str], Counter[str]] = {}
    for when, bucket in ledger.erased:
        buckets.setdefault(bucket, Counter())["applied"] += 1
        weeks.setdefault((monday(when), bucket), Counter())["erased"] += 1
    for when, bucket in ledger.kept:
        buckets.setdefault(bucket, Counter())["kept"] += 1
        weeks.setdefault((monday(when), bucket), Counter())["kept"] += 1
    months: dict[str, Counter[str]] = {}
    done = {**ledger.delivered, **ledger.completed}
    for reference, (_, arrived) in ledger.arrived.items():
        month = months.setdefault(f"{arrived:%Y-%m}", Counter())
        month["received"] += 1
        if reference in done:
            month["completed"] += 1
            month["on_time"] += done[reference] <= add_month(arrived)

    with company.deployment.session() as s:
        per_bucket = bucket_progress(s)
        per_week = outcomes_per_week(s, weeks=DAYS // 7 + 2, now=now)
        per_month = dsar_per_month(s, now=now)
    assert not per_bucket["failed"].any() and not per_week["failed"].any(), "an erasure failed"
    shown_buckets = {
        row["bucket"]: Counter(
            {k: int(row[k]) for k in ("applied", "kept", "batches_accepted", "batches_rejected")}
        )
        for _, row in per_bucket.iterrows()
    }
    assert {b: +c for b, c in shown_buckets.items() if +c} == buckets, f"per bucket at {now}"
    shown_weeks = {
        (row["week"], row["bucket"]): +Counter({"erased": row["erased"], "kept": row["kept"]})
        for _, row in per_week.iterrows()
    }
    assert {k: c for k, c in shown_weeks.items() if c} == weeks, f"per week at {now}"
    shown_months = {
        row["month"]: +Counter({k: int(row[k]) for k in ("received", "completed", "on_time")})
        for _, row in per_month.iterrows()
    }
    assert shown_months == months, f"DSAR per month at {now}"
    check_requests_now(company, done)
    check_backlog(company)


def check_requests_now(company: Company, done: Mapping[str, datetime]) -> None:
    """ "DSAR requests now" and the split per kind and per jurisdiction, against the ledger:
    every request arrived under the GDPR, none was refused, each is open until done."""
    from compliance.reports.dsar_stats import dsar_overview, dsar_split

    ledger, now = company.ledger, company.clock()
    open_now = {r for r in ledger.arrived if r not in done}
    overdue = {r for r in open_now if add_month(ledger.arrived[r][1]) < now}
    per_kind: dict[str, Counter[str]] = {}
    for reference, (kind, arrived) in ledger.arrived.items():
        row = per_kind.setdefault(kind, Counter())
        row["received"] += 1
        row["open"] += reference in open_now
        row["overdue"] += reference in overdue
        row["completed"] += reference in done
        row["on_time"] += reference in done and done[reference] <= add_month(arrived)
    everyone = sum(per_kind.values(), Counter())
    with company.deployment.session() as s:
        overview = dsar_overview(s, now=now)
        by_kind = dsar_split(s, "kind", now=now)
        by_law = dsar_split(s, "jurisdiction", now=now)
    assert (overview.total, overview.open_count, overview.completed_count) == (
        len(ledger.arrived), len(open_now), len(done),
    ), f"DSAR requests now at {now}"  # fmt: skip
    assert set(overview.overdue["reference"]) == overdue, f"overdue at {now}"
    counted = ["received", "open", "overdue", "completed", "on_time"]

    def shown(frame: Any, by: str) -> dict[str, Counter[str]]:
        return {
            str(row[by]): +Counter({k: int(row[k]) for k in counted}) for _, row in frame.iterrows()
        }

    assert shown(by_kind, "kind") == {k: +c for k, c in per_kind.items()}, f"per kind at {now}"
    by_law_expected = {"gdpr": +everyone} if +everyone else {}  # none yet: no row at all
    assert shown(by_law, "jurisdiction") == by_law_expected, f"per jurisdiction at {now}"


def check_backlog(company: Company) -> None:
    """The per-system backlog (kept by triggers, folded by the jobs) against the task rows."""
    from compliance.systems.backlog import WAITING, system_backlog

    with company.deployment.session() as s:
        kinds = {n: str(sy.kind) for n, sy in company.deployment.policy().systems.items()}
        backlog = system_backlog(s, kinds).set_index("system")
        rows = s.execute(
            select(ErasureTask.system, ErasureTask.status, func.count()).group_by(
                ErasureTask.system, ErasureTask.status
            )
        ).all()
    truth: dict[str, Counter[str]] = {}
    for system, status, n in rows:
        truth.setdefault(system, Counter())["waiting" if status in WAITING else status] += n
    shown = {
        str(system): +Counter({k: int(row[k]) for k in ("waiting", "failed", "done", "skipped")})
        for system, row in backlog.iterrows()
    }
    assert shown == {k: +c for k, c in truth.items()}, "backlog per system"


# ---------------------------------------------------------------- the sixty days


def simulated_day(company: Company, lines: list[CronLine], day: date, n: int) -> None:
    """One day: every crontab slot in time order, with the people's work in between."""
    at = lambda h, m: datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)  # noqa: E731
    events: list[tuple[datetime, int, Callable[[], None]]] = []
    for order, line in enumerate(lines):
        for moment in line.slots(day):
            for command in line.commands:
                events.append((moment, order, lambda c=command: company.run_job(c)))
    if n < DAYS - 3:  # the last requests have two days to finish before the real day
        events.append((at(9, 0), -1, lambda: company.requests_arrive(n)))
    events.append((at(10, 0), -1, lambda: company.officer_decides(n)))
    events.append((at(11, 0), -1, company.support_confirms_manual_steps))
    for moment, _, action in sorted(events, key=lambda e: (e[0], e[1])):
        company.clock.set(moment)
        action()


def real_day(company: Company, lines: list[CronLine], home: Path, download_url: str) -> None:
    """Today, for real: each line cron would start today, verbatim, through run-job.sh."""
    d = company.deployment
    home.mkdir()
    (home / ".venv").symlink_to(sys.prefix)  # the venv running these tests
    settings = {
        **{k: v for k, v in d.env.items() if v is not None},
        "COMPLIANCE_DOWNLOAD_URL": download_url,
        "SLACK_BOT_TOKEN": os.environ["SLACK_BOT_TOKEN"],
        "SLACK_API_URL": os.environ["SLACK_API_URL"],
        "PYTHONPATH": str(ROOT),  # this checkout, whichever venv runs the tests
    }
    env_file = home / "env"
    env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items()))
    log = home / "jobs.log"
    environment = {
        "PATH": os.environ["PATH"],
        "J": str(RUN_JOB),
        "LOG": str(log),
        "PRIVACY_DESK_HOME": str(home),
        "PRIVACY_DESK_ENV": str(env_file),
    }
    today = datetime.now(UTC).date()
    for line in lines:
        if line.times(today):
            # cron ignores an exit code, so a job that refused or failed must not hide in it:
            # every line of a healthy day exits 0 (a job run recorded as failed is checked
            # below as well, for what runs without a job run: run-job.sh's own refusals).
            done = subprocess.run(["sh", "-c", line.source], env=environment, timeout=300)
            assert done.returncode == 0, (
                f"{line.source!r} exited {done.returncode}\n{log.read_text()}"
            )
            for command in line.commands:
                company.ledger.ran.append(command)
    company.watch()
    with d.session() as s:
        runs = s.execute(
            select(JobRun.job, JobRun.status, JobRun.error).where(
                JobRun.started_at >= datetime(today.year, today.month, today.day, tzinfo=UTC)
            )
        ).all()
    assert runs, log.read_text()
    failed = [run for run in runs if run.status != "succeeded"]
    assert not failed, f"{failed}\n{log.read_text()}"


def subject_downloads(inbox: Inbox, reference: str) -> bytes:
    """The subject opens the emailed link in Chromium, types the emailed code, saves the ZIP."""
    from playwright.sync_api import sync_playwright

    from tests.browser.test_dashboard_in_chromium import CHROMIUM, launch

    if not CHROMIUM.exists():
        pytest.skip("the download needs Debian's chromium at /usr/bin/chromium")
    mails = {
        m["Subject"]: m.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        for m in inbox.messages
        if reference in m["Subject"]
    }
    link_mail = next(body for subject, body in mails.items() if "data export" in subject)
    code_mail = next(body for subject, body in mails.items() if "download code" in subject)
    link = re.search(r"(http://127\.0\.0\.1:\d+/?\?token=\S+)", link_mail).group(1)  # type: ignore[union-attr]
    code = re.search(r"code is (\d{6})", code_mail).group(1)  # type: ignore[union-attr]
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(link)
            page.get_by_label("The 6-digit code from our second email").fill(code)
            page.get_by_role("button", name="Unlock").click()
            with page.expect_download() as download:
                page.get_by_role("button", name=re.compile("Download")).click()
            return Path(download.value.path()).read_bytes()
        finally:
            browser.close()


@pytest.fixture
def company(
    deployment: Deployment, smtp_inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Company]:
    demo = deployment
    slack = SlackStub().__enter__()
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    demo.write_policy(with_mail_server(SHIPPED_POLICY, smtp_inbox.port))
    demo.use_env(monkeypatch)
    sim = Clock()
    first = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
    sim.set(datetime(first.year, first.month, first.day, tzinfo=UTC))
    with clock.use_clock(sim):
        # The product database as it stood on the first day.
        fill_demo(demo, users_count=400, seed=7)
        with demo.session() as s:
            key = create_api_key(s, "shop", actor=OFFICER, execute=True).key
        with intake_api(free_port()) as url:
            yield Company(demo, smtp_inbox, url, key, sim)
    slack.__exit__()


def test_sixty_days_of_the_shipped_schedule_carry_every_request_to_done(
    company: Company,
) -> None:
    lines = read_crontab()
    first = company.clock().date()
    for n in range(DAYS - 1):
        simulated_day(company, lines, first + timedelta(days=n), n)
    ledger = company.ledger
    print("seconds per job:", ledger.seconds.most_common())

    kinds = {k for k, _ in ledger.arrived.values()}
    assert kinds == set(KINDS_BY_DAY), f"not every kind arrived: {kinds}"
    delivered = {r for r, (k, _) in ledger.arrived.items() if k in DELIVERED_KINDS}
    others = {r for r, (k, _) in ledger.arrived.items() if k not in DELIVERED_KINDS}
    assert set(ledger.delivered) == delivered, "access or portability requests not delivered"
    assert set(ledger.completed) == others, "requests not completed"
    for reference, done in {**ledger.delivered, **ledger.completed}.items():
        kind, when = ledger.arrived[reference]
        assert done <= add_month(when), f"{reference} ({kind}) finished after its deadline"

    check_progress(company)

    # Today, for real: a request made this morning is delivered by the jobs cron starts.
    company.clock.set(datetime.now(UTC))
    company.requests_arrive(0)
    company.officer_decides(0)
    reference = next(r for r, (k, _) in reversed(ledger.arrived.items()) if k == "access")
    from tests.browser.test_request_desk_in_chromium import running_download_page

    with running_download_page(company.deployment) as url:
        real_day(company, lines, company.deployment.dir / "home", url)
        assert reference in ledger.delivered
        archive = zipfile.ZipFile(io.BytesIO(subject_downloads(company.inbox, reference)))
    assert {"data.json", "manifest.json", "README.txt"} <= set(archive.namelist())
    check_progress(company)

    # The Jobs page's verdict on the shipped schedule, as a person opening it now reads it.
    with company.deployment.session() as s:
        health = job_health(s, now=company.clock())
    scheduled = health[health["expected_every"] != "by hand"]
    assert set(scheduled["health"]) == {"ok"}, scheduled.to_string()

    allowed = {command for line in lines for command in line.commands}
    assert set(ledger.ran) <= allowed
    with company.deployment.session() as s:
        ran = Counter(s.scalars(select(JobRun.job)).all())
    assert set(ran) <= {command[0] for command in allowed}
