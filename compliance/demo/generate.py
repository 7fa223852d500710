"""The demo application database: a small SaaS product's schema filled with generated users.

It exists so the dashboard shows real work on first run and so a new user can take a
bucket through its whole lifecycle without touching a real product database.
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from compliance import clock
from compliance.errors import Conflict


class WorkflowRunStatus(StrEnum):
    """The demo application's own workflow runs (its data, not a Privacy Desk lifecycle)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


# Two in three runs succeed.
_WORKFLOW_OUTCOMES = [
    WorkflowRunStatus.SUCCEEDED.value,
    WorkflowRunStatus.SUCCEEDED.value,
    WorkflowRunStatus.FAILED.value,
]

DEMO_POLICY = Path(__file__).resolve().parents[2] / "compliance.toml"

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(255), nullable=False, unique=True),
    Column("full_name", String(255)),
    Column("phone", String(50)),
    Column("password_hash", String(255)),
    Column("country", String(2)),
    Column("plan", String(20)),
    Column("created_at", DateTime, nullable=False),
    Column("last_login_at", DateTime),
    Column("closed_at", DateTime),
)
workflows = Table(
    "workflows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow_id", ForeignKey("workflows.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
)
workflow_logs = Table(
    "workflow_logs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("workflow_run_id", ForeignKey("workflow_runs.id"), nullable=False, index=True),
    Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
)
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_used_at", DateTime),
)
activity_logs = Table(
    "activity_logs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("action", String(50), nullable=False),
    Column("ip_address", String(45)),
    Column("user_agent", String(255)),
    Column("created_at", DateTime, nullable=False, index=True),
)
support_tickets = Table(
    "support_tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("subject", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)
invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("number", String(20), nullable=False, unique=True),
    Column("amount_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("billing_name", String(255)),
    Column("billing_address", Text),
    Column("issued_at", DateTime, nullable=False),
)
payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", ForeignKey("invoices.id"), nullable=False, index=True),
    Column("amount_cents", Integer, nullable=False),
    Column("method", String(20), nullable=False),
    Column("card_last4", String(4)),
    Column("paid_at", DateTime, nullable=False),
)

FIRST = ["Ada", "Björn", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Inès", "Jonas",
         "Kasia", "Luca", "Maja", "Nils", "Olga", "Pablo", "Quentin", "Rosa", "Sven", "Tomasz",
         "Ursula", "Viktor", "Wen", "Xavier", "Yara", "Zoë"]  # fmt: skip
LAST = ["Andersson", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat",
        "Ivanova", "Jansen", "Kowalski", "Lindqvist", "Müller", "Novak", "O'Brien", "Petrov",
        "Rossi", "Schmidt", "Tanaka", "Varga", "Weber", "Young", "Zieliński"]  # fmt: skip
COUNTRIES = ["DE", "FR", "NL", "SE", "PL", "IT", "ES", "IE", "AT", "DK"]
ACTIONS = ["login", "logout", "workflow.created", "workflow.edited", "export.csv", "settings.saved"]
TICKETS = ["Cannot log in", "Workflow stuck in queue", "Invoice question", "Delete my account",
           "API token not working", "Feature request: webhooks",
           "Billing address change"]  # fmt: skip


@dataclass(frozen=True)
class DemoSummary:
    users: int
    rows: dict[str, int]


def naive_utc(dt: datetime) -> datetime:
    """The demo schemas store naive UTC, as many product databases do."""
    return dt.astimezone(UTC).replace(tzinfo=None)


def create_empty_schema(
    engine: Engine, schema: MetaData, first: Table, *, database: str, rows: str
) -> None:
    """Create a demo schema; refuse a database whose ``first`` table already holds ``rows``.

    Generating into a filled database would mix two demos' ids.
    """
    schema.create_all(engine)
    with engine.connect() as conn:
        existing = conn.scalar(select(func.count()).select_from(first)) or 0
    if existing:
        raise Conflict(f"the demo {database} database already holds {existing} {rows}")


def _copy_field(value: Any) -> str:
    """One value as a CSV field COPY reads back exactly: NULL bare, text always quoted (so an
    empty string stays one), times and numbers in PostgreSQL's input syntax."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert generated rows: on PostgreSQL as one COPY stream (a 400-user demo's ten thousand
    rows and its schema in 0.17 s instead of 0.32 s as INSERTs), elsewhere as INSERTs."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        for start in range(0, len(rows), 5000):
            conn.execute(insert(table), rows[start : start + 5000])
        return
    quote = conn.dialect.identifier_preparer.quote
    names = list(rows[0])
    stream = io.StringIO(
        "".join(",".join(_copy_field(row[n]) for n in names) + "\n" for row in rows)
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            "FROM STDIN WITH (FORMAT csv)",
            stream,
        )
    finally:
        cursor.close()


@dataclass(frozen=True)
class _Person:
    """One generated user, as the rows that belong to them need to know them."""

    uid: int
    first: str
    last: str
    plan: str
    created: datetime
    #: When the account last did anything: closed, or the last login.
    active_until: datetime


Rows = dict[str, list[dict[str, Any]]]


class _Ids:
    """The next id of each table, counted from 1 as the rows are made."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, table: str) -> int:
        self._last[table] = self._last.get(table, 0) + 1
        return self._last[table]


def _user(rng: random.Random, uid: int, now: datetime, data: Rows) -> _Person:
    created = now - timedelta(days=rng.uniform(5, 5 * 365))
    age_days = (now - created).days
    # A third of users stopped logging in long ago; some closed their accounts.
    if rng.random() < 0.35:
        last_login = created + timedelta(days=rng.uniform(0, max(age_days - 730, 1)))
    else:
        last_login = now - timedelta(days=rng.uniform(0, min(age_days, 300)))
    last_login = min(last_login, now)
    closed = None
    if rng.random() < 0.12:
        closed = last_login + timedelta(days=rng.uniform(0, 20))
        closed = min(closed, now - timedelta(days=1))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    plan = rng.choice(["free", "free", "pro", "team"])
    data["users"].append({
        "id": uid,
        "email": f"{first.lower()}.{last.lower()}.{uid}@example.org".replace("'", ""),
        "full_name": f"{first} {last}",
        "phone": f"+49 30 {rng.randint(1000000, 9999999)}" if rng.random() < 0.6 else None,
        "password_hash": "pbkdf2_sha256$600000$"
        + hashlib.sha256(f"pw{uid}".encode()).hexdigest(),
        "country": rng.choice(COUNTRIES),
        "plan": plan,
        "created_at": created,
        "last_login_at": last_login,
        "closed_at": closed,
    })  # fmt: skip
    return _Person(uid, first, last, plan, created, closed or last_login)


def _workflows(rng: random.Random, person: _Person, now: datetime, data: Rows, ids: _Ids) -> None:
    uid, created, active_until = person.uid, person.created, person.active_until
    for _ in range(rng.randint(0, 3)):
        wf_id = ids.next("workflows")
        wf_created = created + timedelta(days=rng.uniform(0, max((active_until - created).days, 1)))
        data["workflows"].append({
            "id": wf_id, "user_id": uid, "name": f"Workflow {wf_id}",
            "created_at": wf_created, "updated_at": min(wf_created + timedelta(days=3), now),
        })  # fmt: skip
        for _ in range(rng.randint(0, 4)):
            run_id = ids.next("workflow_runs")
            started = wf_created + timedelta(days=rng.uniform(0, 30))
            started = min(started, now)
            data["workflow_runs"].append({
                "id": run_id, "workflow_id": wf_id,
                "status": rng.choice(_WORKFLOW_OUTCOMES),
                "started_at": started, "finished_at": min(started + timedelta(minutes=3), now),
            })  # fmt: skip
            for step in range(rng.randint(1, 3)):
                data["workflow_logs"].append({
                    "id": ids.next("workflow_logs"), "workflow_run_id": run_id,
                    "level": "info", "message": f"step {step} done for {person.first}",
                    # Never after now: a row from the future outlives "older than 0 days".
                    "created_at": min(started + timedelta(seconds=step), now),
                })  # fmt: skip


def _activity(rng: random.Random, person: _Person, now: datetime, data: Rows, ids: _Ids) -> None:
    """API tokens, activity logs and (for some) support tickets."""
    uid, created, active_until = person.uid, person.created, person.active_until
    for _ in range(rng.randint(0, 2)):
        data["api_tokens"].append({
            "id": ids.next("api_tokens"), "user_id": uid, "name": "ci",
            "token_hash": hashlib.sha256(rng.randbytes(16)).hexdigest(),
            "created_at": created, "last_used_at": active_until,
        })  # fmt: skip
    for _ in range(rng.randint(2, 8)):
        at = created + (active_until - created) * rng.random()
        data["activity_logs"].append({
            "id": ids.next("activity_logs"), "user_id": uid, "action": rng.choice(ACTIONS),
            "ip_address": f"203.0.113.{rng.randint(1, 254)}",
            "user_agent": "Mozilla/5.0", "created_at": at,
        })  # fmt: skip
    if rng.random() < 0.45:
        for _ in range(rng.randint(1, 2)):
            opened = created + (active_until - created) * rng.random()
            data["support_tickets"].append({
                "id": ids.next("support_tickets"), "user_id": uid,
                "subject": rng.choice(TICKETS),
                "body": f"Hello, this is {person.first} {person.last}. Please help.",
                "status": "closed", "created_at": opened,
                "updated_at": min(opened + timedelta(days=rng.uniform(0, 10)), now),
            })  # fmt: skip


def _billing(rng: random.Random, person: _Person, now: datetime, data: Rows, ids: _Ids) -> None:
    """A paying user's invoices and payments, monthly or quarterly while the account is used."""
    if person.plan == "free":
        return
    uid, name = person.uid, f"{person.first} {person.last}"
    amount = 1900 if person.plan == "pro" else 4900
    month = person.created
    while month < person.active_until and month < now:
        inv_id = ids.next("invoices")
        data["invoices"].append({
            "id": inv_id, "user_id": uid, "number": f"INV-{inv_id:07d}",
            "amount_cents": amount, "currency": "EUR",
            "billing_name": name, "billing_address": f"{uid} Demo Street",
            "issued_at": month,
        })  # fmt: skip
        data["payments"].append({
            "id": ids.next("payments"), "invoice_id": inv_id,
            "amount_cents": amount, "method": "card",
            "card_last4": f"{rng.randint(0, 9999):04d}",
            "paid_at": month + timedelta(days=1),
        })  # fmt: skip
        month += timedelta(days=rng.choice([30, 91]))


def generate(rng: random.Random, n_users: int, now: datetime) -> Rows:
    """Rows for every demo table, spread over five years so every demo bucket has work."""
    now = naive_utc(now)
    data: Rows = {t.name: [] for t in metadata.sorted_tables}
    ids = _Ids()
    for uid in range(1, n_users + 1):
        person = _user(rng, uid, now, data)
        _workflows(rng, person, now, data, ids)
        _activity(rng, person, now, data, ids)
        _billing(rng, person, now, data, ids)
    return data


def create_demo_app_database(
    engine: Engine,
    *,
    users_count: int = 3000,
    seed: int = 2026,
    now: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> DemoSummary:
    """Create and fill the demo schema; refuses to touch a database that already has users."""
    create_empty_schema(engine, metadata, users, database="application", rows="users")
    data = generate(random.Random(seed), users_count, now or clock.now())
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            rows = data[table.name]
            insert_rows(conn, table, rows)
            counts[table.name] = len(rows)
            if progress:
                progress(table.name, len(rows))
    return DemoSummary(users=users_count, rows=counts)


def write_demo_policy(target: Path) -> bool:
    """Copy the commented demo policy next to the user, unless one is there already."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_POLICY, target)
    return True
