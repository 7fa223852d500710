"""Privacy Desk at scale: every heavy operation beside raw SQL doing the same work, in one run.

    .venv/bin/python -m benchmarks.run          # PostgreSQL: 1M subjects, 10M child rows
    .venv/bin/python -m benchmarks.run --sizes 100000,300000,1000000   # and how cost grows
    .venv/bin/python -m benchmarks.run --small    # SQLite, 20,000 subjects, under two minutes

PostgreSQL comes from BENCHMARK_POSTGRES_URL (or COMPLIANCE_TEST_POSTGRES_URL); the run works
in schemas of its own and drops them at the end. Jobs run as real `python -m jobs`
processes, so their wall time and peak RSS are what cron would see; the interpreter's
start-up, measured in the same run, is reported apart and left out of the ratios. Results
are printed and, with --output, written as Markdown with the machine, date and commit.

Each size is a fresh world. At the largest size it also measures one subject's export, the
dashboard, apply-deletions with two workers against one, and erasure done row at a time (one
statement per row and table; per-object ORM deletes) on a few thousand subjects, extrapolated.
Targets: every job at most 1.25x raw SQL, every job's peak RSS at most 300 MB, every
dashboard page at most 0.3 s, seconds per 100k subjects at the largest size within 1.2x of
the smallest, and two apply workers faster than one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select, text

from compliance.audit.chain import record_events, verify_chain
from compliance.deletion.apply import DEFAULT_CHUNK_SIZE
from compliance.demo.generate import DEMO_POLICY
from compliance.demo.generate import metadata as demo_metadata
from compliance.dsar.exports import collect_subject_data
from compliance.policy.datamap import DataMap
from compliance.policy.loader import load_policy
from compliance.store.engines import make_engine, migrate, session_factory
from compliance.store.hashing import DEMO_HASH_KEY
from compliance.store.models import JobRun

ROOT = Path(__file__).resolve().parent.parent

TARGET_RATIO = 1.25
TARGET_RSS_MB = 300
TARGET_PAGE_S = 0.3
TARGET_LINEAR = 1.2
PER = 100_000  # the scaling table's unit: seconds per this many subjects
ROW_AT_A_TIME = 10_000
BUCKET = """
[buckets.bench]
description = "Every subject (a benchmark, not a rule)"
tables = ["users", "workflows", "api_tokens", "activity_logs"]
rules = [{ sql = "SELECT id FROM users" }]
"""
# Child rows per subject: workflows 1, workflow_runs 2, workflow_logs 2, api_tokens 1,
# activity_logs 4 = 10.
FILL = [
    ("users (id, email, full_name, phone, password_hash, created_at, last_login_at)",
     "i, 'u' || i || '@example.com', 'User ' || i, '+49 30 ' || i, 'x', {ts}, {ts}", 1),
    ("workflows (id, user_id, name, created_at, updated_at)", "i, i, 'wf', {ts}, {ts}", 1),
    ("workflow_runs (id, workflow_id, status, started_at)",
     "i, (i + 1) / 2, 'ok', {ts}", 2),
    ("workflow_logs (id, workflow_run_id, level, message, created_at)",
     "i, i, 'info', 'ran', {ts}", 2),
    ("api_tokens (id, user_id, name, token_hash, created_at)", "i, i, 'ci', 'h', {ts}", 1),
    ("activity_logs (id, user_id, action, created_at)", "i, (i + 3) / 4, 'login', {ts}", 4),
]  # fmt: skip


@dataclass
class Row:
    operation: str
    project_s: float
    raw_s: float | None
    rss_mb: float | None = None
    note: str = ""
    page: bool = False  # a dashboard page: its target is absolute time, not a ratio
    units: int = 0  # subjects (or events) the time is for, for the per-100k figure
    row_at_a_time_s: float | None = None  # the same work row by row, extrapolated

    @property
    def ratio(self) -> float | None:
        return None if not self.raw_s else self.project_s / self.raw_s

    @property
    def met(self) -> bool:
        if self.page:
            return self.project_s <= TARGET_PAGE_S
        return (self.ratio is None or self.ratio <= TARGET_RATIO) and (
            self.rss_mb is None or self.rss_mb <= TARGET_RSS_MB
        )

    @property
    def per_100k(self) -> float | None:
        return self.project_s / self.units * PER if self.units else None


@dataclass
class Bench:
    dialect: str
    subjects: int
    apply: int
    audit_events: int
    workdir: Path
    app_url: str
    compliance_url: str
    scratch_url: str
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    startup_s: float = 0.0
    largest: bool = True  # the size that also measures export, dashboard, workers, row-by-row
    row_at_a_time: int = 0
    workers: dict[int, float] = field(default_factory=dict)  # workers -> seconds, same count
    lead: dict[str, float] = field(default_factory=dict)  # row-at-a-time seconds, scaled

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPLIANCE_")}
        env |= {
            "COMPLIANCE_CONFIG": str(self.workdir / "compliance.toml"),
            "COMPLIANCE_EXPORT_DIR": str(self.workdir / "exports"),
            "COMPLIANCE_ACTOR": "benchmark",
            "PYTHONPATH": str(ROOT),
        }
        return env

    def log(self, message: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# ------------------------------------------------------------------ set-up


def series(dialect: str, n_sql: str) -> tuple[str, str]:
    """(prefix, source) yielding i = 1..n, as each database spells it."""
    if dialect == "postgresql":
        return "", f"generate_series(1, {n_sql}) AS s(i)"
    return (
        f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n_sql}) ",
        "s",
    )


def fill_app(bench: Bench, engine: Engine) -> None:
    demo_metadata.create_all(engine)
    ts = (
        "now() - interval '3 years'"
        if bench.dialect == "postgresql"
        else "datetime('now', '-3 years')"
    )
    with engine.begin() as conn:
        for target, select_list, per_subject in FILL:
            prefix, source = series(bench.dialect, str(bench.subjects * per_subject))
            conn.execute(
                text(
                    f"{prefix}INSERT INTO {target} SELECT {select_list.format(ts=ts)} FROM {source}"
                )
            )
        if bench.dialect == "postgresql":  # only our tables: never wait on other schemas' locks
            for table in demo_metadata.sorted_tables:
                conn.execute(text(f"ANALYZE {table.name}"))


def write_policy(bench: Bench) -> None:
    body = DEMO_POLICY.read_text()
    body = body.replace('"sqlite:///var/compliance.db"', f'"{bench.compliance_url}"')
    body = body.replace('"sqlite:///var/demo_app.db"', f'"{bench.app_url}"')
    (bench.workdir / "compliance.toml").write_text(body + BUCKET)
    # The demo's second SQL system: an empty billing schema, so the data map checks out.
    from compliance.demo.billing import metadata as billing_metadata

    billing = make_engine(f"sqlite:///{bench.workdir / 'var' / 'demo_billing.db'}")
    billing_metadata.create_all(billing)
    billing.dispose()


@contextmanager
def workspace(small: bool, subjects: int, apply: int, audit_events: int) -> Iterator[Bench]:
    workdir = Path(tempfile.mkdtemp(prefix="privacy-desk-bench-"))
    if small:
        app, compliance, scratch = (
            f"sqlite:///{workdir / n}.db" for n in ("app", "compliance", "scratch")
        )
        bench = Bench("sqlite", subjects, apply, audit_events, workdir, app, compliance, scratch)
    else:
        server = os.environ.get("BENCHMARK_POSTGRES_URL") or os.environ.get(
            "COMPLIANCE_TEST_POSTGRES_URL"
        )
        if not server:
            sys.exit(
                "set BENCHMARK_POSTGRES_URL=postgresql+psycopg2://USER@HOST:5432/DB "
                "(or use --small)"
            )
        tag = uuid.uuid4().hex[:8]
        schemas = [f"bench_{tag}_{role}" for role in ("app", "compliance", "scratch")]
        admin = create_engine(server)
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in server else "?"
        app, compliance, scratch = (f"{server}{sep}options=-csearch_path%3D{s}" for s in schemas)
        bench = Bench(
            "postgresql", subjects, apply, audit_events, workdir, app, compliance, scratch
        )

        def drop() -> None:
            with admin.begin() as conn:
                for schema in schemas:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()

        bench.cleanup.append(drop)
    bench.cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    try:
        yield bench
    finally:
        for step in reversed(bench.cleanup):
            step()


# ------------------------------------------------------------------ measuring


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def run_job(
    bench: Bench, *args: str, config: Path | None = None, database_url: str | None = None
) -> tuple[float, float, dict[str, Any]]:
    """The job's own seconds, peak RSS in MB, and the job's JSON summary.

    Seconds are those its job_runs row records (start to finish, so the interpreter's
    start-up and imports are out), which a loaded machine's start-up jitter cannot skew.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs", *args, "--json"],
            cwd=ROOT, stdout=out, stderr=err, text=True,
            env=bench.env | ({"COMPLIANCE_CONFIG": str(config)} if config else {}),
        )  # fmt: skip
        # wait4, not wait: it hands back this child's own resource usage (peak RSS in KB).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{err.read()[-2000:]}")
        summary = json.loads(out.read())
    engine = make_engine(database_url or bench.compliance_url)
    try:
        with engine.connect() as conn:
            started_at, finished_at = conn.execute(
                select(JobRun.started_at, JobRun.finished_at)
                .where(JobRun.job == args[0])
                .order_by(JobRun.id.desc())
                .limit(1)
            ).one()
    finally:
        engine.dispose()
    seconds = (finished_at - started_at).total_seconds() if finished_at else wall
    return seconds, usage.ru_maxrss / 1024, summary


def measure_startup(bench: Bench) -> None:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import jobs.cli, jobs.commands"],
            cwd=ROOT, env=bench.env, check=True,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    bench.startup_s = min(times)


def raw(engine: Engine, statements: list[str], params: dict[str, Any] | None = None) -> float:
    def go() -> None:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params or {})

    return timed(go)[0]


# ------------------------------------------------------------------ the operations


def bench_create_records(bench: Bench, scratch: Engine) -> None:
    bench.log(f"create-deletion-records for {bench.subjects:,} due subjects")
    seconds, rss, summary = run_job(
        bench, "create-deletion-records", "--bucket", "bench", "--execute"
    )
    assert summary["created"] == bench.subjects, summary
    users = _app_table(bench, "users")
    baseline = raw(
        scratch,
        [
            "INSERT INTO compliance_profiles (subject_id, created_at, updated_at) "
            f"SELECT CAST(id AS TEXT), {_now(bench)}, {_now(bench)} FROM {users}",
            "INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_scheduled_at, "
            "is_manually_reviewed, created_at, updated_at) "
            f"SELECT id, 'bench', {_now(bench)}, false, {_now(bench)}, {_now(bench)} "
            "FROM compliance_profiles",
        ],
    )
    bench.rows.append(
        Row(
            "create-deletion-records",
            seconds,
            baseline,
            rss,
            "baseline: one INSERT … SELECT per table",
            units=bench.subjects,
        )
    )
    # The same work when the compliance tables live in the application database itself.
    shared = bench.workdir / "shared.toml"
    policy = (bench.workdir / "compliance.toml").read_text()
    shared.write_text(policy.replace(f'"{bench.compliance_url}"', f'"{bench.app_url}"'))
    app = make_engine(bench.app_url)
    migrate(app)
    app.dispose()
    seconds, rss, summary = run_job(
        bench,
        "create-deletion-records", "--bucket", "bench", "--execute",
        config=shared, database_url=bench.app_url,
    )  # fmt: skip
    assert summary["created"] == bench.subjects, summary
    bench.rows.append(
        Row(
            "create-deletion-records, one database",
            seconds,
            baseline,
            rss,
            "both URLs name one database: one INSERT … SELECT per table in the job too",
            units=bench.subjects,
        )
    )


def bench_create_batches(bench: Bench, scratch: Engine) -> None:
    batches = -(-bench.subjects // 200)
    bench.log(f"create-deletion-batches: {batches:,} batches of 200")
    seconds, rss, summary = run_job(
        bench, "create-deletion-batches", "--bucket", "bench", "--execute"
    )
    assert summary["records"] == bench.subjects, summary
    prefix, source = series(bench.dialect, str(batches))
    baseline = raw(
        scratch,
        [
            f"{prefix}INSERT INTO deletion_batches "
            "(id, bucket, reviewed_status, created_at, updated_at) "
            f"SELECT i, 'bench', 'pending', {_now(bench)}, {_now(bench)} FROM {source}",
            "UPDATE deletion_records SET deletion_batch_id = (id - 1) / 200 + 1",
        ],
    )
    bench.rows.append(
        Row(
            "create-deletion-batches",
            seconds,
            baseline,
            rss,
            "baseline: one INSERT, one UPDATE",
            units=bench.subjects,
        )
    )


def accept_batches(bench: Bench, compliance: Engine, first: int, last: int) -> None:
    """The review (not what is measured): accept batches ``first``..``last``."""
    with compliance.begin() as conn:
        conn.execute(
            text(
                "UPDATE deletion_batches SET reviewed_status = 'accepted', reviewed_by = 'b@x.io', "
                f"reviewed_at = {_now(bench)} WHERE id BETWEEN :a AND :b"
            ),
            {"a": first, "b": last},
        )
        conn.execute(
            text(
                "UPDATE deletion_records SET accepted_for_deletion = true "
                "WHERE deletion_batch_id BETWEEN :a AND :b"
            ),
            {"a": first, "b": last},
        )


def erase_statements(bench: Bench) -> list[str]:
    """The erasure of subjects ``{keys}`` by hand: the demo policy's plan as plain SQL."""
    return [
        "DELETE FROM workflow_logs WHERE workflow_run_id IN (SELECT id FROM workflow_runs WHERE "
        "workflow_id IN (SELECT id FROM workflows WHERE user_id IN ({keys})))",
        "DELETE FROM workflow_runs WHERE workflow_id IN "
        "(SELECT id FROM workflows WHERE user_id IN ({keys}))",
        "DELETE FROM workflows WHERE user_id IN ({keys})",
        "DELETE FROM api_tokens WHERE user_id IN ({keys})",
        "DELETE FROM activity_logs WHERE user_id IN ({keys})",
        # Doubled braces: the statements are templates for str.format (the regex has {40}).
        f"UPDATE users SET email = {_hashed(bench).replace('{', '{{').replace('}', '}}')}, "
        "full_name = NULL, phone = NULL WHERE id IN ({keys})",
    ]


def bench_apply(bench: Bench, compliance: Engine, app: Engine) -> None:
    n_batches = bench.apply // 200
    bench.log(f"apply-deletions for {bench.apply:,} subjects ({n_batches} accepted batches)")
    accept_batches(bench, compliance, 1, n_batches)
    seconds, rss, summary = run_job(bench, "apply-deletions", "--bucket", "bench", "--execute")
    assert summary["applied"] == bench.apply and summary["failed"] == 0, summary
    bench.workers[1] = seconds
    if bench.largest and bench.dialect == "postgresql":
        # As many other subjects, with two workers in one run.
        bench.log(f"apply-deletions --workers 2 for {bench.apply:,} other subjects")
        accept_batches(bench, compliance, n_batches + 1, 2 * n_batches)
        two, _, summary = run_job(
            bench, "apply-deletions", "--bucket", "bench", "--execute", "--workers", "2"
        )
        assert summary["applied"] == bench.apply and summary["failed"] == 0, summary
        bench.workers[2] = two
    statements = erase_statements(bench)
    # The same job by hand with the least bookkeeping any apply needs, on the next accepted
    # records (their subjects untouched so far): claimed, erased, marked applied.
    first = (2 if 2 in bench.workers else 1) * n_batches + 1
    accept_batches(bench, compliance, first, first + n_batches - 1)
    marked_s, (marked, erased) = timed(lambda: apply_by_hand(bench, compliance, app, statements))
    assert marked == erased == bench.apply, (marked, erased)  # subjects with data, each once
    # Baseline: the same statements by hand, chunk by chunk, for as many subjects not erased yet.
    with app.connect() as conn:
        keys = [r[0] for r in conn.execute(
            text("SELECT id FROM users WHERE full_name IS NOT NULL ORDER BY id LIMIT :n"),
            {"n": bench.apply},
        )]  # fmt: skip
    assert len(keys) == bench.apply, len(keys)

    def baseline() -> None:
        for start in range(0, len(keys), DEFAULT_CHUNK_SIZE):
            chunk = ", ".join(str(k) for k in keys[start : start + DEFAULT_CHUNK_SIZE])
            with app.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement.format(keys=chunk)))

    raw_s = timed(baseline)[0]
    row = Row(
        "apply-deletions",
        seconds,
        raw_s,
        rss,
        f"baseline: the same DELETE/UPDATE statements by hand, {DEFAULT_CHUNK_SIZE} subjects "
        "per transaction",
        units=bench.apply,
    )
    bench.rows.append(row)
    bench.rows.append(
        Row(
            "apply-deletions, beside raw SQL that also claims and marks",
            seconds,
            marked_s,
            None,
            "baseline: per chunk, claim the due records (locked, as the job does), the same "
            "erasure, one UPDATE marking them applied",
            units=bench.apply,
        )
    )
    if bench.largest and bench.row_at_a_time:
        bench_row_at_a_time(bench, app, row)


def apply_by_hand(
    bench: Bench, compliance: Engine, app: Engine, statements: list[str]
) -> tuple[int, int]:
    """Accepted due records erased chunk by chunk in raw SQL, each chunk claimed and then
    marked applied in the compliance database: what any apply job must do at the least.

    Returns (records marked, workflows deleted): one workflow per subject, so the second
    shows each subject still had data to erase.
    """
    lock = " FOR UPDATE OF r SKIP LOCKED" if bench.dialect == "postgresql" else ""
    claim = text(
        "SELECT r.id, p.subject_id FROM deletion_records r "
        "JOIN compliance_profiles p ON p.id = r.compliance_profile_id "
        "WHERE r.bucket = 'bench' AND r.accepted_for_deletion AND r.deletion_applied_at IS NULL "
        f"AND r.deletion_scheduled_at <= {_now(bench)} AND r.id > :last "
        f"ORDER BY r.id LIMIT {DEFAULT_CHUNK_SIZE}{lock}"
    )
    last, applied, workflows = 0, 0, 0
    while True:
        with compliance.begin() as conn:
            chunk = conn.execute(claim, {"last": last}).all()
            if not chunk:
                return applied, workflows
            last = chunk[-1][0]
            keys = ", ".join(str(int(subject)) for _, subject in chunk)
            with app.begin() as erase:
                for statement in statements:
                    done = erase.execute(text(statement.format(keys=keys)))
                    if statement.startswith("DELETE FROM workflows "):
                        workflows += done.rowcount
            ids = ", ".join(str(rid) for rid, _ in chunk)
            conn.execute(
                text(
                    f"UPDATE deletion_records SET deletion_applied_at = {_now(bench)}, "
                    f"updated_at = {_now(bench)} WHERE id IN ({ids})"
                )
            )
            applied += len(chunk)


def _hashed(bench: Bench) -> str:
    """The ``hash`` strategy by hand: HMAC-SHA256 with the demo key, as the job computes it."""
    key = DEMO_HASH_KEY
    if bench.dialect != "postgresql":
        return f"pd_anon_hash(email, '{key.hex()}')"
    block = key.ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in block).hex()
    opad = bytes(b ^ 0x5C for b in block).hex()
    inner = f"sha256(decode('{ipad}', 'hex') || convert_to(email, 'UTF8'))"
    digest = f"left(encode(sha256(decode('{opad}', 'hex') || {inner}), 'hex'), 40)"
    return f"CASE WHEN email ~ '^anon-[0-9a-f]{{40}}$' THEN email ELSE 'anon-' || {digest} END"


# Children first, as foreign keys demand: (table, how to find the subject's rows by id).
ROW_BY_ROW = [
    ("workflow_logs", "SELECT id FROM workflow_logs WHERE workflow_run_id IN (SELECT id FROM "
                      "workflow_runs WHERE workflow_id IN (SELECT id FROM workflows "
                      "WHERE user_id = :s))"),
    ("workflow_runs", "SELECT id FROM workflow_runs WHERE workflow_id IN "
                      "(SELECT id FROM workflows WHERE user_id = :s)"),
    ("workflows", "SELECT id FROM workflows WHERE user_id = :s"),
    ("api_tokens", "SELECT id FROM api_tokens WHERE user_id = :s"),
    ("activity_logs", "SELECT id FROM activity_logs WHERE user_id = :s"),
]  # fmt: skip


def row_at_a_time_start(subjects: int, n: int) -> int:
    """The first of the 2n subjects erased row at a time (SQL, then ORM): after every subject
    apply-deletions and its baselines erase, before the last ten (one is the export's)."""
    return subjects - 2 * n - 10


def bench_row_at_a_time(bench: Bench, app: Engine, ours: Row) -> None:
    """Erasure as row-by-row tools do it, on ``row_at_a_time`` subjects, scaled to ours.

    "SQL": per subject, find each table's rows, then one DELETE (or UPDATE) per row by primary
    key, one transaction per subject, as the leading open-source DSR tool's SQL connector
    does. "ORM": per subject, load every related object and ``session.delete`` it, as a
    Django-style job would. Subjects are taken from the end, untouched by everything else.
    """
    from sqlalchemy.orm import DeclarativeBase, Session

    from compliance.policy.strategies import HashStrategy

    n = bench.row_at_a_time
    first = row_at_a_time_start(bench.subjects, n)
    sql_subjects = range(first, first + n)
    orm_subjects = range(first + n, first + 2 * n)
    bench.log(f"row at a time: {n:,} subjects by SQL per row, {n:,} by ORM per object")
    update_user = (
        f"UPDATE users SET email = {_hashed(bench)}, full_name = NULL, phone = NULL WHERE id = :id"
    )

    def by_row() -> None:
        for subject in sql_subjects:
            with app.begin() as conn:
                found = {t: [r[0] for r in conn.execute(text(q), {"s": subject})]
                         for t, q in ROW_BY_ROW}  # fmt: skip
                user = conn.execute(text("SELECT id FROM users WHERE id = :s"), {"s": subject})
                for table, ids in found.items():
                    for row_id in ids:
                        conn.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": row_id})
                for (user_id,) in user.all():
                    conn.execute(text(update_user), {"id": user_id})

    class Base(DeclarativeBase):
        pass

    tables = demo_metadata.tables
    model: dict[str, Any] = {  # mapped classes built at run time
        name: type(name.title().replace("_", ""), (Base,), {"__table__": tables[name]})
        for name in ("users", "workflows", "workflow_runs", "workflow_logs", "api_tokens",
                     "activity_logs")
    }  # fmt: skip
    hashed = HashStrategy().transform

    def by_object() -> None:
        users, workflows, runs, logs, tokens, activity = (
            model[t] for t in ("users", "workflows", "workflow_runs", "workflow_logs",
                               "api_tokens", "activity_logs")
        )  # fmt: skip
        for subject in orm_subjects:
            with Session(app) as session:
                user = session.get(users, subject)
                flows = session.scalars(select(workflows).where(workflows.user_id == subject)).all()
                flow_runs = session.scalars(
                    select(runs).where(runs.workflow_id.in_([f.id for f in flows]))
                ).all()
                objects = [
                    *session.scalars(
                        select(logs).where(logs.workflow_run_id.in_([r.id for r in flow_runs]))
                    ),
                    *flow_runs,
                    *flows,
                    *session.scalars(select(tokens).where(tokens.user_id == subject)),
                    *session.scalars(select(activity).where(activity.user_id == subject)),
                ]
                for obj in objects:
                    session.delete(obj)
                if user is not None:
                    user.email, user.full_name, user.phone = hashed(user.email), None, None
                session.commit()

    scale = ours.units / n
    ours.row_at_a_time_s = timed(by_row)[0] * scale
    bench.lead = {"subjects": n, "sql": ours.row_at_a_time_s, "orm": timed(by_object)[0] * scale}


def bench_export(bench: Bench, app: Engine) -> None:
    bench.log("one subject's export")
    datamap = DataMap(load_policy(bench.workdir / "compliance.toml", env={}), app)
    subject = str(bench.subjects - 7)  # never erased above
    queries = [
        "SELECT * FROM users WHERE id = :s",
        "SELECT * FROM workflows WHERE user_id = :s",
        "SELECT * FROM workflow_runs WHERE workflow_id IN "
        "(SELECT id FROM workflows WHERE user_id = :s)",
        "SELECT * FROM workflow_logs WHERE workflow_run_id IN (SELECT id FROM workflow_runs WHERE "
        "workflow_id IN (SELECT id FROM workflows WHERE user_id = :s))",
        "SELECT * FROM api_tokens WHERE user_id = :s",
        "SELECT * FROM activity_logs WHERE user_id = :s",
        "SELECT * FROM support_tickets WHERE user_id = :s",
        "SELECT * FROM invoices WHERE user_id = :s",
        "SELECT * FROM payments WHERE invoice_id IN (SELECT id FROM invoices WHERE user_id = :s)",
    ]

    def by_hand() -> None:
        with app.connect() as conn:
            for query in queries:
                conn.execute(text(query), {"s": int(subject)}).all()

    ours = statistics.median(
        timed(lambda: collect_subject_data(datamap, subject))[0] for _ in range(15)
    )
    base = statistics.median(timed(by_hand)[0] for _ in range(15))
    bench.rows.append(
        Row(
            "one subject's export (collect)",
            ours,
            base,
            None,
            "median of 15; baseline: the raw SELECTs",
        )
    )


def bench_dashboard(bench: Bench, compliance: Engine) -> None:
    from streamlit.testing.v1 import AppTest

    from compliance.reports.review_queue import list_batches
    from compliance.reports.stats import bucket_progress, outcomes_per_week

    bench.log("dashboard pages through AppTest")
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # bare-mode warnings, every run
    os.environ.update(bench.env)
    app_file = str(ROOT / "dashboard" / "app.py")

    # A running server compiles each page script once and discovers its components once;
    # AppTest does both again for every new instance. Share them, so what is timed is what a
    # person signing in to a running dashboard waits for (their cached data still cleared).
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    compiled = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: compiled  # type: ignore[assignment,misc]
    components: list[object] = []

    def render(page: str | None) -> None:
        import streamlit as st

        st.cache_data.clear()
        at = AppTest.from_file(app_file, default_timeout=300)
        if components:
            at._bidi_component_manager = components[0]  # type: ignore[assignment]
        at.run()
        components[:] = [at._bidi_component_manager]
        at.selectbox(key="demo_user").select("dpo@example.com").run()
        if page:
            at.switch_page(page).run()
        assert not at.exception, at.exception

    session = session_factory(compliance)
    with session() as s:
        sql_batches = statistics.median(
            timed(lambda: list_batches(s, status="pending", limit=25))[0] for _ in range(5)
        )
        sql_progress = statistics.median(
            timed(lambda: (bucket_progress(s), outcomes_per_week(s)))[0] for _ in range(5)
        )
    render(None)  # warm the interpreter's imports, as a running server is
    batches = statistics.median(timed(lambda: render(None))[0] for _ in range(3))
    progress = statistics.median(timed(lambda: render("views/progress.py"))[0] for _ in range(3))
    note = (
        "sign-in + page render, data cache cleared, scripts compiled once as a running "
        "server does; baseline: the page's read functions"
    )
    bench.rows.append(
        Row("dashboard: deletion batches page", batches, sql_batches, None, note, page=True)
    )
    bench.rows.append(
        Row("dashboard: progress page", progress, sql_progress, None, note, page=True)
    )


def bench_verify(bench: Bench, compliance: Engine) -> None:
    bench.log(f"verify-audit-log over {bench.audit_events:,} more events")
    session = session_factory(compliance)
    with session() as s:
        for start in range(0, bench.audit_events, 10_000):
            count = min(10_000, bench.audit_events - start)
            record_events(
                s, actor="benchmark", action="benchmark.event", target_type="bucket",
                events=[(start + i, {"n": start + i, "rows": {"users": 1}}) for i in range(count)],
            )  # fmt: skip
            s.commit()
        total = s.scalar(text("SELECT count(*) FROM audit_events"))
    seconds, rss, summary = run_job(bench, "verify-audit-log")
    assert summary["ok"] and summary["checked"] == total, summary

    def baseline() -> None:  # the same walk without the library: raw rows, same hashing
        from compliance.audit.chain import _canonical, compute_hash

        with compliance.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(
                "SELECT occurred_at, actor, action, target_type, target_id, details, prev_hash, "
                "hash FROM audit_events ORDER BY id"
            )
            while rows := cursor.fetchmany(10_000):
                for occurred, actor, action, ttype, tid, details, prev, digest in rows:
                    when = (
                        occurred
                        if isinstance(occurred, datetime)
                        else datetime.fromisoformat(occurred)
                    )
                    body = details if isinstance(details, dict) else json.loads(details)
                    canonical = _canonical(
                        when.replace(tzinfo=UTC), actor, action, ttype, tid, body
                    )
                    assert compute_hash(prev, canonical) == digest

    raw_s = timed(baseline)[0]
    with session() as s:
        assert verify_chain(s).ok
    bench.rows.append(
        Row(
            f"verify-audit-log ({total:,} events)",
            seconds,
            raw_s,
            rss,
            "baseline: a raw cursor and the same hashing",
            units=total,
        )
    )


# ------------------------------------------------------------------ report


def _now(bench: Bench) -> str:
    return "now()" if bench.dialect == "postgresql" else "datetime('now')"


def _app_table(bench: Bench, table: str) -> str:
    """The application table as the scratch database sees it (another schema or file)."""
    if bench.dialect == "postgresql":
        schema = bench.app_url.rsplit("%3D", 1)[1]
        return f'"{schema}".{table}'
    return f"app.{table}"


def machine() -> str:
    cpu = "unknown CPU"
    with _ignore():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with _ignore():
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}"


def _ignore() -> suppress:
    return suppress(OSError, ValueError, IndexError)


def _seconds(value: float) -> str:
    return f"{value:.4f}" if value < 1 else f"{value:.2f}"


def _cell(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def report(benches: list[Bench], database: str, elapsed: float) -> str:
    """The main table at the largest size, then scaling, workers and the row-at-a-time lead."""
    bench = benches[-1]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    sizes = ", ".join(f"{b.subjects:,}" for b in benches)
    lines = [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit or 'unknown'}",
        f"- machine: {machine()}",
        f"- database: {database}",
        f"- sizes: {sizes} subjects (10 child rows each); whole run {elapsed:.0f} s",
        f"- table below: {bench.subjects:,} subjects, {bench.subjects * 10:,} child rows; apply "
        f"{bench.apply:,}; +{bench.audit_events:,} audit events",
        f"- job times are their job_runs rows' (start to finish); the interpreter start-up "
        f"and imports before that, left out: {bench.startup_s:.2f} s",
        "",
        "| operation | project (s) | raw SQL (s) | ratio | row at a time (s) | peak RSS (MB) "
        "| target met | how |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in bench.rows:
        lines.append(
            f"| {row.operation} | {_seconds(row.project_s)} | {_seconds(row.raw_s or 0)} | "
            f"{_cell(row.ratio)} | {_cell(row.row_at_a_time_s, '{:.1f}')} | "
            f"{_cell(row.rss_mb, '{:.0f}')} | {_yes(row.met)} | {row.note} |"
        )
    lines += ["", *scaling(benches)]
    if len(bench.workers) == 2:
        one, two = bench.workers[1], bench.workers[2]
        lines += [
            "",
            f"**Two apply workers** ({bench.apply:,} subjects each way, `apply-deletions "
            f"--workers 2` against `--workers 1`): {one:.2f} s with one, {two:.2f} s with two, "
            f"a speed-up of {one / two:.2f}×; target (two faster than one) met: "
            f"{_yes(two < one)}. Each record was applied exactly once (the job's summary "
            "counts match the accepted records).",
        ]
    if bench.lead:
        ours = next(r for r in bench.rows if r.operation == "apply-deletions")
        raw_per = ours.raw_s / ours.units * PER if ours.raw_s else None
        per = {k: v / ours.units * PER for k, v in bench.lead.items() if k != "subjects"}
        lines += [
            "",
            f"**The lead over row-at-a-time erasure** (seconds per {PER:,} subjects; the "
            f"row-at-a-time figures measured on {int(bench.lead['subjects']):,} subjects each "
            "in this run and extrapolated):",
            "",
            "| erasure | s per 100k subjects | × ours |",
            "|---|---:|---:|",
            f"| apply-deletions (ours) | {_cell(ours.per_100k)} | 1.00 |",
            f"| raw SQL, set-based chunks | {_cell(raw_per)} | "
            f"{_cell(raw_per / ours.per_100k if raw_per and ours.per_100k else None)} |",
        ]
        labels = {
            "sql": "one DELETE/UPDATE per row and table, a transaction per subject "
            "(a DSR tool's SQL connector)",
            "orm": "ORM: load, then delete object by object, a commit per subject (Django-style)",
        }
        for key, label in labels.items():
            factor = per[key] / ours.per_100k if ours.per_100k else None
            lines.append(f"| {label} | {per[key]:.1f} | {_cell(factor, '{:.1f}')} |")
    return "\n".join(lines) + "\n"


def scaling(benches: list[Bench]) -> list[str]:
    """Seconds per 100k subjects for each job at each size, and largest against smallest."""
    jobs = [r.operation for r in benches[-1].rows if r.units and r.rss_mb is not None]
    head = " | ".join(f"{b.subjects:,}" for b in benches)
    lines = [
        f"**Linear cost**: seconds per {PER:,} subjects (apply: per 100k applied; verify: per "
        f"100k audit events) at each size; target: the largest size within {TARGET_LINEAR}× "
        "of the smallest.",
        "",
        f"| job | {head} | largest / smallest | target met |",
        "|---|" + "---:|" * (len(benches) + 1) + "---|",
    ]
    for job in jobs:
        name = job.split(" (")[0]  # "verify-audit-log (N events)" differs by size
        per = []
        for b in benches:
            row = next((r for r in b.rows if r.operation.split(" (")[0] == name), None)
            per.append(row.per_100k if row else None)
        growth = per[-1] / per[0] if len(benches) > 1 and per[0] and per[-1] else None
        met = "–" if growth is None else _yes(growth <= TARGET_LINEAR)
        cells = " | ".join(_cell(p) for p in per)
        lines.append(f"| {name} | {cells} | {_cell(growth)} | {met} |")
    return lines


def measure(bench: Bench, startup_s: float | None) -> str:
    """One size, in its own fresh databases; returns the database's version string."""
    write_policy(bench)
    app, compliance, scratch = (
        make_engine(u) for u in (bench.app_url, bench.compliance_url, bench.scratch_url)
    )
    migrate(compliance)
    migrate(scratch)
    if bench.dialect == "sqlite":
        scratch.dispose()
        scratch = _attached(bench)
    bench.log(f"filling the application database ({bench.subjects:,} subjects)")
    fill_time = timed(lambda: fill_app(bench, app))[0]
    bench.log(f"filled in {fill_time:.0f} s")
    if startup_s is None:
        measure_startup(bench)
    else:
        bench.startup_s = startup_s
    bench_create_records(bench, scratch)
    bench_create_batches(bench, scratch)
    bench_apply(bench, compliance, app)
    if bench.largest:
        bench_export(bench, app)
    bench_verify(bench, compliance)
    if bench.largest:
        bench_dashboard(bench, compliance)
    with app.connect() as conn:
        database = conn.exec_driver_sql(
            "SELECT version()"
            if bench.dialect == "postgresql"
            else "SELECT 'SQLite ' || sqlite_version()"
        ).scalar()
    for engine in (app, compliance, scratch):
        engine.dispose()
    return str(database).split(" on ")[0]


def _sizes(value: str) -> list[int]:
    try:
        sizes = sorted({int(v.replace("_", "")) for v in value.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a list of numbers") from None
    if not sizes or sizes[0] < 1000:
        raise argparse.ArgumentTypeError("every size must be at least 1000 subjects")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="SQLite, 20,000 subjects")
    parser.add_argument("--sizes", type=_sizes, help="subjects per run, e.g. 100000,300000,1000000")
    parser.add_argument("--subjects", type=int, help="one size (default 1,000,000; 20,000 small)")
    parser.add_argument("--apply", type=int, help="subjects apply-deletions erases (default 10%%)")
    parser.add_argument("--audit-events", type=int, help="events verify-audit-log walks")
    parser.add_argument(
        "--row-at-a-time",
        type=int,
        default=ROW_AT_A_TIME,
        help="subjects erased row by row (SQL and ORM each), at most a tenth of the largest size",
    )
    parser.add_argument("--output", type=Path, help="write the results as Markdown here")
    args = parser.parse_args()
    sizes = args.sizes or [args.subjects or (20_000 if args.small else 1_000_000)]
    started = time.perf_counter()
    benches: list[Bench] = []
    database = ""
    for subjects in sizes:
        apply = args.apply or subjects // 10
        audit_events = args.audit_events or subjects
        apply = max(200, apply - apply % 200)  # whole batches of 200
        row_at_a_time = min(args.row_at_a_time, subjects // 10)
        if 4 * apply > row_at_a_time_start(subjects, row_at_a_time):
            # One worker, two workers and two baselines erase apply subjects each, below the
            # subjects left for row-at-a-time erasure and the export.
            parser.error(f"--apply {apply} is more than {subjects} subjects leave for it")
        with workspace(args.small, subjects, apply, audit_events) as bench:
            bench.largest = subjects == sizes[-1]
            bench.row_at_a_time = row_at_a_time
            database = measure(bench, benches[0].startup_s if benches else None)
        benches.append(bench)
    text_report = report(benches, database, time.perf_counter() - started)
    print()
    print(text_report)
    if args.output:
        title = "SQLite --small" if args.small else "PostgreSQL, full size"
        args.output.write_text(f"## {title}\n\n{text_report}")
        print(f"written to {args.output}")


def _attached(bench: Bench) -> Engine:
    """A scratch engine whose every connection sees the application database as ``app``."""
    from sqlalchemy import event

    engine = make_engine(bench.scratch_url)

    @event.listens_for(engine, "connect")
    def attach(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"ATTACH DATABASE '{bench.workdir / 'app.db'}' AS app")

    return engine


if __name__ == "__main__":
    main()
