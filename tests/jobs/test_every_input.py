"""Every input answered: a bad value is one line naming it, exit 2, and no table changes.

The security review threw 185 bad inputs at the commands; these are the ones that ended in
a traceback or did the wrong thing silently. ``job_runs`` is left out of "no table changed":
a refused run is recorded there on purpose.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select

from compliance.dsar.decisions import review_dsar
from compliance.dsar.delivery import default_download_url
from compliance.dsar.desk import add_note
from compliance.dsar.requests import submit
from compliance.errors import ConfigError, InvalidInput
from compliance.store.models import ComplianceProfile, DsarRequest
from tests.conftest import (
    DEMO_POLICY,
    DPO,
    SUPPORT_STAFF,
    Backend,
    Deployment,
    fill_demo,
    make_deployment,
    table_digest,
)

HUGE = "10000000000000000000000000"
EXPORT = ["export-user-data", "--by", "support@example.com"]
LONG_NAME = "b" * 300


def snapshot(d: Deployment) -> str:
    """A digest of every compliance table but job_runs, every application table and the exports."""
    digest = hashlib.sha256()
    for name in sorted(inspect(d.engine).get_table_names()):
        if name not in ("job_runs", "alembic_version"):
            digest.update(table_digest(d.engine, name).encode())
    digest.update(d.checksum(*d.policy().tables).encode())
    exports = d.dir / "exports"
    if exports.exists():
        digest.update(repr(sorted(p.name for p in exports.rglob("*"))).encode())
    return digest.hexdigest()


def refused(
    d: Deployment,
    args: list[str],
    message: str,
    env: dict[str, str | None] | None = None,
    *,
    before: str | None = None,
) -> None:
    """``before``: the snapshot already taken, when several refusals follow one another."""
    before = before or snapshot(d)
    result = d.run(*args, env=env)
    assert result.exit_code == 2, (args, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and len(lines) == 1, (args, result.stderr)
    assert message in errors[0], (args, errors[0])
    assert "Traceback" not in result.output
    assert snapshot(d) == before, args


@pytest.fixture
def queue(demo: Deployment) -> Deployment:
    demo.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    demo.run(
        "create-deletion-batches", "--bucket", "closed_accounts", "--max-batch-size", "20",
        "--execute",
    )  # fmt: skip
    return demo


def pending_reference(d: Deployment) -> str:
    with d.session() as s:
        made = submit(
            s, d.policy(), d.app_engine, kind="access", subject_id="7",
            requested_by=SUPPORT_STAFF, execute=True,
        )  # fmt: skip
    return made.request.reference


BAD_COMMAND_LINES = [
    (["review-batch", HUGE, "--accept", "--reviewer", "dpo@example.com", "--execute"],
     f"BATCH_ID must be from 1 to 9223372036854775807, got {HUGE}"),
    (["review-batch", "0", "--accept", "--reviewer", "dpo@example.com", "--execute"],
     "BATCH_ID must be from 1 to"),
    (["review-batch", "1", "--accept", "--reviewer", "dpo@example.com", "--exclude", HUGE,
      "--execute"], f"'{HUGE}' is not a record id"),
    (["review-batch", "1", "--accept", "--reject", "--reviewer", "dpo@example.com",
      "--reason", "r", "--execute"], "--accept and --reject cannot be given together"),
    (["review-batch", "1", "--reject", "--accept", "--reviewer", "dpo@example.com",
      "--execute"], "--reject and --accept cannot be given together"),
    (["create-deletion-batches", "--bucket", "closed_accounts", "--max-batch-size", HUGE,
      "--execute"], f"--max-batch-size must be from 1 to 100000, got {HUGE}"),
    (["create-deletion-records", "--bucket", "closed_accounts", "--chunk-size", HUGE,
      "--execute"], f"--chunk-size must be from 1 to 500000, got {HUGE}"),
    (["apply-deletions", "--chunk-size", HUGE, "--execute"], "--chunk-size must be from 1 to"),
    (["retention-cleanup", "--chunk-size", HUGE, "--execute"], "--chunk-size must be from 1 to"),
    (["process-dsar-requests", "--limit", HUGE, "--execute"], "--limit must be from 1 to 1000"),
    (["process-dsar-requests", "--limit", "abc", "--execute"],
     "--limit must be a whole number, got 'abc'"),
    (["alert-dsar-deadlines", "--within-days", "1000000000"],
     "--within-days must be from 0 to 36500, got 1000000000"),
    (["alert-dsar-deadlines", "--today", "9999-12-31"],
     "--today must be a date from 1970-01-01 to 2999-12-31, got '9999-12-31'"),
    (["alert-unreviewed-batches", "--today", "0001-01-01"], "--today must be a date from"),
    (["alert-unreviewed-batches", "--today", "2026-02-30"],
     "--today must be a date YYYY-MM-DD, got '2026-02-30'"),
    ([*EXPORT, "--subject-id", HUGE], f"subject id '{HUGE}' is out of range"),
    ([*EXPORT, "--subject-id", "../../../etc/passwd"],
     "subject id '../../../etc/passwd' is not a whole number"),
    ([*EXPORT, "--subject-id", "   "], "--subject-id is empty"),
    ([*EXPORT, "--subject-id", "3\x00"], "--subject-id holds a control character"),
    (["export-user-data", "--subject-id", "3", "--by", "a" * 100_000 + "@example.com"],
     "--by is longer than 254 characters (100012)"),
    (["review-batch", "1", "--accept", "--reviewer", "dpo\x01@example.com", "--execute"],
     "--reviewer holds a control character"),
    (["hold", "add", "--subject-id", "3", "--reason", "court", "--by", "dpo\x7f@example.com",
      "--execute"], "--by holds a control character"),
    ([*EXPORT, "--subject-id", "3", "--output", "/proc/privacy-desk"],
     "cannot write the export to /proc/privacy-desk"),
    (["submit-dsar", "--kind", "access", "--subject-id", HUGE, "--requested-by",
      "support@example.com", "--execute"], f"subject id '{HUGE}' is out of range"),
    (["submit-dsar", "--kind", "erasure", "--subject-id", "1e3", "--requested-by",
      "support@example.com", "--execute"], "subject id '1e3' is not a whole number"),
    (["apply-deletions", "--bucket", LONG_NAME, "--execute"],
     "--bucket is longer than 64 characters"),
    (["hold", "add", "--subject-id", HUGE, "--reason", "r", "--by", "dpo@example.com",
      "--execute"], f"subject id '{HUGE}' is out of range"),
    (["hold", "add", "--subject-id", "3", "--reason", "r", "--by", "dpo@example.com",
      "--until", "9999-12-31", "--execute"], "--until must be a date from 1970-01-01"),
    (["hold", "remove", HUGE, "--reason", "r", "--by", "dpo@example.com", "--execute"],
     "HOLD_ID must be from 1 to"),
    (["replay-erasures", "--since", "9999-12-31", "--execute"],
     "--since must be a date from 1970-01-01 to 2999-12-31"),
    (["purge-compliance-data", "--bucket", "../../etc/passwd", "--execute"],
     "unknown bucket '../../etc/passwd'"),
    # A refused value is quoted back short, with escape sequences shown, not sent to the terminal.
    (["process-dsar-requests", "--limit", "9" * 39 + "a" * 100_000, "--execute"],
     f"--limit must be a whole number, got '{'9' * 39}a…' (100039 characters)"),
    (["alert-dsar-deadlines", "--today", "\x1b[2J"],
     "--today must be a date YYYY-MM-DD, got '\\x1b[2J'"),
    (["review-batch", "1", "--accept", "--reviewer", "dpo@example.com", "--exclude",
      "x" * 100_000 + ":kept", "--execute"], "(100000 characters) is not a record id"),
    # Bytes that are not UTF-8 reach Python as lone surrogates, which no database encodes.
    (["hold", "add", "--subject-id", "3", "--reason", "court\udcff", "--by",
      "dpo@example.com", "--execute"], "the value after --reason is not valid UTF-8 text"),
    (["apply-deletions", "--bucket=x\udcff", "--execute"], "--bucket is not valid UTF-8 text"),
    # The audit trail's name for the run is written into every event and shown everywhere.
    (["--actor", "ops\x1b[31m", "create-deletion-records", "--bucket", "closed_accounts",
      "--execute"], "--actor must be 1 to 255 printable characters"),
    (["--actor", "o" * 256, "retention-cleanup", "--execute"],
     "--actor must be 1 to 255 printable characters"),
    # Free text goes through one check in the library (compliance.free_text), whoever calls.
    (["hold", "add", "--subject-id", "3", "--reason", "court\x00order", "--by",
      "dpo@example.com", "--execute"], "--reason holds a control character"),
    (["hold", "add", "--subject-id", "3", "--reason", "r" * 100_000, "--by",
      "dpo@example.com", "--execute"], "--reason is longer than 4000 characters (100000)"),
    (["submit-dsar", "--kind", "access", "--subject-id", "3", "--requested-by",
      "support@example.com", "--identity-check", "passport\x1b[2J", "--execute"],
     "--identity-check holds a control character"),
]  # fmt: skip


def test_every_bad_command_line_is_one_line_exit_2_and_changes_nothing(queue: Deployment) -> None:
    reference = pending_reference(queue)
    extra = [
        (["review-dsar", reference, "--approve", "--reject", "--reviewer", "dpo@example.com",
          "--reason", "r", "--execute"], "--approve and --reject cannot be given together"),
        (["extend-dsar", reference, "--months", HUGE, "--reason", "r", "--execute"],
         "--months must be from 1 to 120"),
        (["review-dsar", reference, "--reject", "--reviewer", "dpo@example.com", "--reason",
          "no\x00", "--execute"], "--reason holds a control character"),
        (["extend-dsar", reference, "--months", "1", "--reason", "x" * 4001, "--by",
          "dpo@example.com", "--execute"],
         "--reason is longer than 4000 characters (4001)"),
    ]  # fmt: skip
    # Each refusal changes nothing, so the one snapshot stands before every next one.
    before = snapshot(queue)
    for args, message in [*BAD_COMMAND_LINES, *extra]:
        refused(queue, args, message, before=before)
    refused(
        queue, ["create-deletion-records", "--bucket", "closed_accounts", "--execute"],
        "COMPLIANCE_ACTOR must be 1 to 255 printable characters",
        env={"COMPLIANCE_ACTOR": "ops\udcff"},  # bytes that are not UTF-8, as cron passes them
        before=before,
    )  # fmt: skip
    refused(
        queue, ["apply-deletions", "--execute"],
        "COMPLIANCE_DATABASE_URL is not valid UTF-8 text",
        env={"COMPLIANCE_DATABASE_URL": "postgresql://\udcff@127.0.0.1/x"},
        before=before,
    )  # fmt: skip
    # A name in any script is a name: only what acts on a terminal is refused.
    named = queue.run("--actor", "Jos\u00e9\u00a0M\u00fcller", "retention-cleanup")
    assert named.exit_code == 0, named.output


def test_a_command_line_that_is_not_utf8_is_refused_before_anything_runs(
    queue: Deployment,
) -> None:
    """Real argv bytes, through a real process: \\xff once crashed the job writing its run."""
    before = snapshot(queue)
    proc = queue.run_process(
        "hold", "add", "--subject-id", "3", "--by", "dpo@example.com", "--execute", "--reason",
        b"court \xff order",  # type: ignore[arg-type]  # what a shell passes through
    )  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip() == "Error: the value after --reason is not valid UTF-8 text"
    assert snapshot(queue) == before


def test_free_text_is_checked_in_the_library_whoever_types_it(queue: Deployment) -> None:
    """The dashboard's text areas pass line breaks and whatever is pasted: the library decides.

    A NUL reached PostgreSQL as a driver error; layout (tabs, line breaks) is kept.
    """
    reference = pending_reference(queue)
    before = snapshot(queue)
    for body, message in (
        ("called\x00twice", "note holds a control character"),
        ("x" * 4001, "note is longer than 4000 characters (4001)"),
        ("called \ud800 twice", "note is not valid UTF-8 text"),
        (" \n\t ", "the note is empty"),
    ):
        with queue.session() as s, pytest.raises(InvalidInput, match=re.escape(message)):
            add_note(s, reference, author=SUPPORT_STAFF, body=body)
    assert snapshot(queue) == before
    with queue.session() as s:
        typed = "  Called twice.\n\tPrefers email. "
        note = add_note(s, reference, author=SUPPORT_STAFF, body=typed)
    assert note.body == "Called twice.\n\tPrefers email."


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("older_than_days = 365", "older_than_days = 1000000000",
         "buckets.stale_support_tickets.rules[0].older_than_days: at most 36500 days"),
        ("\ndays = 90", "\ndays = 99999999999",
         "retention.workflow_logs.days: at most 36500 days (a century), got 99999999999"),
        ("grace_days = 0", "grace_days = 10000000",
         "buckets.inactive_accounts.grace_days: at most 36500 days"),
        ("purge_after_days = 30", "purge_after_days = 36501",
         "buckets.inactive_accounts.purge_after_days: at most 36500 days"),
        ("[buckets.closed_accounts]", f"[buckets.{LONG_NAME}]",
         "a name is 1 to 64 letters, digits, '_' or '-'"),
        ("[buckets.closed_accounts]", '[buckets."closed accounts/../x"]',
         'buckets."closed accounts/../x": a name is 1 to 64 letters'),
        ('timestamp = "updated_at", older_than_days', 'timestamp = "subject", older_than_days',
         "column 'support_tickets.subject' is VARCHAR(255), not a date or time column"),
        ('table = "workflow_logs"\ntimestamp = "created_at"',
         'table = "workflow_logs"\ntimestamp = "level"',
         "retention.workflow_logs.timestamp: column 'workflow_logs.level' is VARCHAR(10)"),
    ],
)  # fmt: skip
def test_a_policy_value_out_of_bounds_is_refused_when_it_loads(
    queue: Deployment, old: str, new: str, message: str
) -> None:
    assert old in DEMO_POLICY
    before = snapshot(queue)
    queue.write_policy(DEMO_POLICY.replace(old, new, 1))
    for args in (
        ["create-deletion-records", "--bucket", "inactive_accounts", "--execute"],
        ["retention-cleanup", "--execute"],
    ):
        result = queue.run(*args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("Error: ") and message in line, line
    queue.write_policy(DEMO_POLICY)
    assert snapshot(queue) == before


def test_an_age_rule_on_a_text_column_no_longer_makes_every_subject_due(
    queue: Deployment,
) -> None:
    """The review's case: ``timestamp = "phone"`` made every row "due"."""
    body = DEMO_POLICY
    rule = '{ table = "users", timestamp = "phone", older_than_days = 1 }'
    assert "rules = [" in body
    queue.write_policy(body.replace("rules = [", f"rules = [\n  {rule},", 1))
    result = queue.run("create-deletion-records", "--bucket", "closed_accounts")
    assert result.exit_code == 2
    assert "column 'users.phone' is VARCHAR(50), not a date or time column" in result.stderr


def test_one_subject_has_one_profile_whatever_spacing_or_zeros(queue: Deployment) -> None:
    references = set()
    for typed in ("3", " 3 ", "003", "+3"):
        out = queue.run(
            "--json", "submit-dsar", "--kind", "access", "--subject-id", typed,
            "--requested-by", "support@example.com", "--execute",
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        references.add(json.loads(out.stdout)["reference"])
        exported = queue.run(
            "export-user-data", "--by", "support@example.com", "--subject-id", typed
        )
        assert exported.exit_code == 0, exported.output
    assert len(references) == 1, "the same open request every time"
    with queue.session() as s:
        keys = s.scalars(
            select(ComplianceProfile.subject_id).where(
                ComplianceProfile.subject_id.in_(["3", " 3 ", "003", "+3"])
            )
        ).all()
        requests = s.scalars(select(DsarRequest.subject_id)).all()
    assert keys == ["3"]
    assert "003" not in requests and " 3 " not in requests and "+3" not in requests


def test_a_file_that_is_not_sqlite_is_named_as_such(queue: Deployment) -> None:
    not_a_database = queue.dir / "notes.txt"
    not_a_database.write_text("hello, I am a text file\n" * 100)
    for url in (f"sqlite:///{not_a_database}", f"sqlite:///{queue.policy_path}"):
        result = queue.run("verify-audit-log", env={"COMPLIANCE_DATABASE_URL": url})
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("Error: compliance database at sqlite:///")
        assert line.endswith("is unreachable: file is not a database")
    result = queue.run(
        "apply-deletions", env={"COMPLIANCE_APP_DATABASE_URL": f"sqlite:///{not_a_database}"}
    )
    assert result.exit_code == 2 and "application database" in result.stderr


@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_plain_postgres_urls_work_with_the_installed_driver(
    deployment: Deployment, scheme: str
) -> None:
    if deployment.backend != "postgresql":
        pytest.skip("a PostgreSQL URL needs the PostgreSQL backend")
    url = deployment.database_url.replace("postgresql+psycopg2://", scheme, 1)
    assert url.startswith(scheme)
    result = deployment.run("verify-audit-log", env={"COMPLIANCE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout or "0 events" in result.stdout or result.stdout


def test_the_dashboard_refuses_a_huge_subject_id_with_a_message(
    queue: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:

    from tests.dashboard.conftest import SUPPORT, button, open_signed_in, texts

    before = snapshot(queue)
    try:
        at = open_signed_in(queue, monkeypatch, SUPPORT)
        at.text_input[0].input(HUGE)
        [method] = [b for b in at.selectbox if b.label.startswith("How the requester")]
        method.select("id_document")
        button(at, "Log request").click().run()
        assert not at.exception, at.exception
        assert any(f"subject id '{HUGE}' is out of range" in t for t in texts(at, "error"))
    finally:
        import streamlit

        streamlit.cache_data.clear()
        streamlit.cache_resource.clear()
    assert snapshot(queue) == before


# ---------------------------------------------------------------- the property


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    """One deployment with open batches and an approved request, for every generated line."""
    base = tmp_path_factory.mktemp("every-input")
    d = make_deployment(Backend("sqlite", base), base / "deploy")
    fill_demo(d, users_count=60, seed=11)
    d.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    d.run("create-deletion-batches", "--bucket", "closed_accounts", "--execute")
    with d.session() as s:
        made = submit(
            s, d.policy(), d.app_engine, kind="access", subject_id="2",
            requested_by=SUPPORT_STAFF, execute=True,
        )  # fmt: skip
        review_dsar(
            s, made.request.reference, "approve", reviewer=DPO, four_eyes=True, execute=True
        )
    yield d, made.request.reference
    d.dispose()


@pytest.fixture(scope="module")
def shared_before(shared: tuple[Deployment, str]) -> str:
    """The shared deployment's snapshot, taken once: no generated line may ever change it."""
    return snapshot(shared[0])


KNOWN_BUCKETS = {"closed_accounts", "inactive_accounts", "stale_support_tickets", "dsar_erasure"}
# Classes of bad values, by the kind of slot they are thrown at.
BAD = {
    "count": st.one_of(
        st.integers(min_value=2**63).map(str),
        st.integers(max_value=0).map(str),
        st.sampled_from(["abc", "1e3", "1.5", "", " ", "0x10", "²", "NaN", "--"]),
    ),
    "id": st.one_of(
        st.integers(min_value=2**63).map(str),
        st.integers(max_value=0).map(str),
        st.sampled_from(["abc", "1.0", "", "../../etc/passwd", "١"]),
    ),
    "days": st.one_of(
        st.integers(min_value=36_501).map(str),
        st.integers(max_value=-1).map(str),
        st.sampled_from(["a week", "7d", ""]),
    ),
    "date": st.one_of(
        st.dates(min_value=date(3000, 1, 1)).map(str),
        st.dates(max_value=date(1969, 12, 31)).map(str),
        st.sampled_from(["2026-02-30", "26-01-01", "2026/01/01", "today", "", "9999-12-31"]),
    ),
    "subject": st.one_of(
        st.integers(min_value=2**63).map(str),
        st.integers(max_value=-(2**63) - 1).map(str),
        st.sampled_from(["../../../etc/passwd", "1e3", "3.0", "", "   ", "3\x00", "x" * 300]),
        st.text(alphabet="abcxyz/.-_ ", min_size=1, max_size=12).filter(
            lambda s: not s.strip().lstrip("+-").isdigit()
        ),
    ),
    "bucket": st.one_of(
        st.just("b" * 300),
        st.sampled_from(["../../etc/passwd", "nope", "", "closed accounts", "\x00"]),
        st.text(max_size=20).filter(lambda s: s not in KNOWN_BUCKETS),
    ),
    "output": st.sampled_from(["/proc/privacy-desk", "/proc/self/nope/x", "/dev/null/x"]),
    "correction": st.one_of(
        st.sampled_from(
            [
                "users.id=1",
                "invoices.amount_cents=1",
                "nope.x=1",
                "users",
                "=x",
                "users.country=Germany",
                "users.full_name=",
                "users.full_name=\x00",
            ]
        ),
        st.text(max_size=30).filter(lambda s: "=" not in s),
    ),
}
EXCLUSIVE = {
    "review-batch": ["--accept", "--reject"],
    "review-dsar": ["--approve", "--reject"],
}
REF = "{ref}"
TEMPLATES: dict[str, list[tuple[str, str | None]]] = {
    # (token, kind of bad value it may be replaced by, or None to keep it)
    "review-batch": [("1", "id"), ("--accept", None), ("--reviewer", None),
                     ("dpo@example.com", None), ("--exclude", None), ("1:note", "id"),
                     ("--execute", None)],
    "review-dsar": [(REF, None), ("--approve", None), ("--reviewer", None),
                    ("dpo@example.com", None), ("--execute", None)],
    "create-deletion-batches": [("--bucket", None), ("closed_accounts", "bucket"),
                                ("--max-batch-size", None), ("20", "count"), ("--execute", None)],
    "create-deletion-records": [("--bucket", None), ("closed_accounts", "bucket"),
                                ("--chunk-size", None), ("100", "count"), ("--execute", None)],
    "apply-deletions": [("--bucket", None), ("closed_accounts", "bucket"),
                        ("--chunk-size", None), ("100", "count"), ("--execute", None)],
    "purge-compliance-data": [("--bucket", None), ("closed_accounts", "bucket"),
                              ("--execute", None)],
    "retention-cleanup": [("--chunk-size", None), ("100", "count"), ("--execute", None)],
    "process-dsar-requests": [("--limit", None), ("5", "count"), ("--execute", None)],
    "extend-dsar": [(REF, None), ("--months", None), ("1", "count"), ("--reason", None),
                    ("more systems", None), ("--execute", None)],
    "alert-dsar-deadlines": [("--within-days", None), ("7", "days"), ("--today", None),
                             ("2026-03-01", "date")],
    "alert-unreviewed-batches": [("--today", None), ("2026-03-01", "date")],
    "submit-dsar": [("--kind", None), ("access", None), ("--subject-id", None), ("4", "subject"),
                    ("--requested-by", None), ("support@example.com", None), ("--execute", None)],
    "export-user-data": [("--by", None), ("support@example.com", None),
                         ("--subject-id", None), ("4", "subject"), ("--format", None),
                         ("csv", None), ("--output", None), ("{out}", "output")],
    "init-db": [("--demo-users", None), ("10", "count")],
    "hold": [("add", None), ("--subject-id", None), ("4", "subject"), ("--reason", None),
             ("court order", None), ("--by", None), ("dpo@example.com", None),
             ("--until", None), ("2027-01-01", "date"), ("--execute", None)],
    "replay-erasures": [("--since", None), ("2026-01-01", "date"), ("--execute", None)],
    "scan-personal-data": [("--sample", None), ("200", "count"), ("--system", None),
                           ("app_database", None)],
    "submit-dsar --kind rectification": [
        ("--kind", None), ("rectification", None), ("--subject-id", None), ("4", "subject"),
        ("--requested-by", None), ("support@example.com", None),
        ("--correct", None), ("users.full_name=Ada", "correction"), ("--execute", None)],
    "lift-restriction": [(REF, "id"), ("--reason", None), ("settled", None), ("--by", None),
                         ("dpo@example.com", None), ("--execute", None)],
    "suppression": [("list", None), ("--csv", None), ("{out}", "output")],
}  # fmt: skip


@st.composite
def bad_command_line(draw: st.DrawFn) -> tuple[str, list[str]]:
    command = draw(st.sampled_from(sorted(TEMPLATES)))
    template = TEMPLATES[command]
    slots = [i for i, (_, kind) in enumerate(template) if kind]
    choices = [*slots, *(["exclusive"] if command in EXCLUSIVE else [])]
    pick = draw(st.sampled_from(choices))
    tokens = [token for token, _ in template]
    if pick == "exclusive":
        tokens += list(reversed(EXCLUSIVE[command]))
    else:
        kind = template[pick][1]
        assert kind is not None
        tokens[pick] = draw(BAD[kind])
    return command, tokens


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=bad_command_line())
def test_any_bad_value_in_any_command_is_exit_2_one_line_and_changes_nothing(
    shared: tuple[Deployment, str], shared_before: str, line: tuple
) -> None:
    d, reference = shared
    command, tokens = line
    out = str(d.dir / "user-exports")
    args = [t.replace(REF, reference).replace("{out}", out) for t in tokens]
    before = shared_before
    result = d.run(command.split()[0], *args)  # "submit-dsar --kind …": one more template
    assert result.exit_code == 2, (command, args, result.output)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), (command, args, result.stderr)
    assert "Traceback" not in result.output and "unexpected" not in lines[0]
    assert snapshot(d) == before, (command, args)
    assert not Path(out).exists() or not any(Path(out).iterdir())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("--execute?token=x", "is not an absolute http:// or https:// URL"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("https://privacy.example.com/\x00", "holds a space or a control character"),
        ("\x1b[2J", "holds a space or a control character"),
        ("javascript:alert(1)", "is not an absolute http:// or https:// URL"),
        ("privacy.example.com/download", "is not an absolute http:// or https:// URL"),
        ("https://", "has no host"),
        ("https://privacy.example.com@evil.example/", "has a user name or password"),
        ("https://privacy.example.com/download#", "has a #fragment"),
    ],
)  # fmt: skip
def test_deliver_dsar_mails_only_an_absolute_http_url_with_a_host(
    queue: Deployment, url: str, message: str
) -> None:
    """All 53 non-URL values the review tried once went out in the subject's email."""
    reference = pending_reference(queue)
    args = ["deliver-dsar", reference, "--download-url", url, "--by", "support@example.com"]
    refused(queue, [*args, "--execute"], f"--download-url {message}")
    env = {"COMPLIANCE_DOWNLOAD_URL": url} if url.strip() and "\x00" not in url else None
    if env:
        refused(queue, [*args[:2], *args[4:], "--execute"], f"--download-url {message}", env)
        # Automatic delivery and the dashboard read the variable too, and check it as well.
        with pytest.raises(ConfigError, match=f"^COMPLIANCE_DOWNLOAD_URL {re.escape(message)}"):
            default_download_url(env)


def test_review_dsar_says_rejected_not_rejectd(queue: Deployment) -> None:
    reference = pending_reference(queue)
    result = queue.run(
        "review-dsar", reference, "--reject", "--reason", "Duplicate of an earlier request",
        "--reviewer", "dpo@example.com", "--execute",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Rejected {reference} (access)" in result.stdout
    assert "Rejectd" not in result.output


# ---------------------------------------------------------------- limits with numbers

DEEP = 5000


def _policy_cases(d: Deployment) -> list[tuple[str, str]]:
    """(policy text, message): each breaks one limit of README's "Input limits"."""
    templates = 'templates_dir = "no-such-folder"\n'
    return [
        (DEMO_POLICY + "\n# " + "x" * (1024 * 1024) + "\n", "is larger than 1024 KiB"),
        (DEMO_POLICY + f"\n[scratch]\nx = {'[' * DEEP}{']' * DEEP}\n",
         "tables and arrays nest deeper than 32 levels"),
        (DEMO_POLICY + f"\n[scratch]\nx = {'[' * 40}{']' * 40}\n",
         "scratch.x" + "[0]" * 30 + ": tables and arrays nest deeper than 32 levels"),
        (DEMO_POLICY + f"\n[scratch]\nx = {'9' * DEEP}\n",
         "a number is outside 64-bit whole numbers"),
        (DEMO_POLICY.replace("max_attempts = 3 ", f"max_attempts = {2**63} "),
         f"dsar.max_attempts: {2**63} is outside 64-bit whole numbers"),
        (DEMO_POLICY.replace("max_attempts = 3 ", f"max_attempts = {2**63 - 1} "),
         "dsar.max_attempts: at most 100"),
        (DEMO_POLICY.replace("[dsar]\n", "[dsar]\n" + templates),
         "dsar.templates_dir: '" + str(d.dir / "no-such-folder") + "' is not a folder"),
        (DEMO_POLICY.replace("[buckets.closed_accounts]", '[buckets."--execute"]'),
         "a name is 1 to 64 letters"),
    ]  # fmt: skip


def test_every_limit_of_the_policy_file_and_environment_is_one_line(queue: Deployment) -> None:
    """Each was a traceback, a kernel kill (~23 GB read from /dev/zero) or silently accepted."""
    command = ["create-deletion-records", "--bucket", "closed_accounts", "--execute"]
    before = snapshot(queue)
    for body, message in _policy_cases(queue):
        queue.write_policy(body)  # the snapshot reads the policy: compared once it is back
        result = queue.run(*command)
        assert result.exit_code == 2, (message, result.output[:300])
        (line,) = result.stderr.splitlines()
        assert line.startswith("Error: ") and message in line, line[:300]
    queue.write_policy(DEMO_POLICY)
    assert snapshot(queue) == before
    refused(queue, command, "policy file /dev/zero is larger than 1024 KiB",
            env={"COMPLIANCE_CONFIG": "/dev/zero"})  # fmt: skip
    big = "x" * (64 * 1024 + 1)
    for name in ("COMPLIANCE_EXPORT_DIR", "SMTP_PASSWORD", "COMPLIANCE_HASH_KEY"):
        refused(queue, command, f"{name} is longer than 64 KiB (65537 characters)",
                env={name: big})  # fmt: skip
    refused(queue, command, "needs the Python driver 'MySQLdb', which is not installed",
            env={"COMPLIANCE_DATABASE_URL": "mysql://root@127.0.0.1/compliance"})  # fmt: skip


@pytest.mark.parametrize("key", [" " * 40, "a" * 40, "ab" * 20, " " * 30 + "0123456789"])
def test_a_hash_key_of_spaces_or_one_repeated_character_is_no_secret(key: str) -> None:
    from compliance.errors import ConfigError
    from compliance.policy.strategies import hash_secret

    with pytest.raises(ConfigError, match="COMPLIANCE_HASH_KEY is too short or not random"):
        hash_secret(demo_mode=False, env={"COMPLIANCE_HASH_KEY": key})
    good = "3f9c0d7e5a1b2c4d6e8f00112233445566778899"
    assert hash_secret(demo_mode=False, env={"COMPLIANCE_HASH_KEY": good}) == good.encode()


def test_the_reviews_silent_wrong_answers_are_refused_in_one_line(queue: Deployment) -> None:
    """Each of these once did something other than what was typed, without a word."""
    reference = pending_reference(queue)
    by = ["--by", "dpo@example.com"]
    cases = [
        ([*EXPORT, "--subject-id", "3", "--output", ""], "--output is empty"),
        ([*EXPORT, "--subject-id", "3", "--output", "   "], "--output is empty"),
        ([*EXPORT, "--subject-id", "3", "--output", "out\x00put"], "--output holds a control"),
        ([*EXPORT, "--subject-id", "3", "--output", "out\u202eput"], "--output holds a control"),
        ([*EXPORT, "--subject-id", "3", "--output", "out\x1bput"], "--output holds a control"),
        (["init-db", "--demo-users", "\uff11\uff12"], "--demo-users must be a whole number"),
        (["extend-dsar", reference, "--months", "2", "--months", "1", "--reason", "systems",
          *by, "--execute"], "--months is given more than once"),
        (["--actor", "ops\u2028", "retention-cleanup", "--execute"],
         "--actor must be 1 to 255 printable characters"),
        (["api-key", "revoke", "x\u2028", *by, "--execute"], "must be 1-63 lower-case"),
    ]  # fmt: skip
    assert queue.run("api-key", "create", "--name", "x", *by, "--execute").exit_code == 0
    for args, message in cases:
        refused(queue, args, message)
    assert not any(p.name.startswith("out") for p in Path.cwd().iterdir())
