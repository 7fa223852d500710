"""Fixtures: a whole deployment (policy file, compliance and application databases) per test.

Every database test runs on SQLite and on PostgreSQL. PostgreSQL tests use the server
named by COMPLIANCE_TEST_POSTGRES_URL, each test in schemas of its own that are dropped
afterwards; without that variable they skip with a message saying how to run them.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from compliance import failpoints
from compliance.policy.datamap import DataMap
from compliance.policy.loader import load_policy
from compliance.policy.model import Policy
from compliance.policy.systems import APP_SYSTEM
from compliance.roles import Identity, identify
from compliance.store.engines import make_engine, migrate, session_factory

ROOT = Path(__file__).resolve().parent.parent
# Failpoints are inert outside the test suite; this turns them on here and in every job the
# tests start (they inherit the environment).
os.environ[failpoints.SUITE_ENV] = failpoints.SUITE_VALUE
PG_ENV = "COMPLIANCE_TEST_POSTGRES_URL"
PG_REQUIRED_ENV = "COMPLIANCE_TEST_REQUIRE_POSTGRES"
SHIPPED_POLICY = (ROOT / "compliance.toml").read_text()
# The shipped policy, except that no job mails anyone on its own: tests of automatic delivery
# turn it on beside a local SMTP server (tests.smtp_server.mailing_to).
DEMO_POLICY = SHIPPED_POLICY.replace("auto_deliver = true", "auto_deliver = false", 1)
assert DEMO_POLICY != SHIPPED_POLICY, "compliance.toml no longer says auto_deliver = true"
#: The demo policy's outbox: mail written to a folder instead of sent (demo only).
DEMO_OUTBOX = 'outbox = "var/outbox"\n'
_DEMO_SMTP_SERVER = 'host = "localhost"\nport = 25'


def with_mail_server(body: str, port: int, host: str = "127.0.0.1") -> str:
    """``body`` (the demo policy) sending mail to the SMTP server at host:port, not its outbox."""
    assert DEMO_OUTBOX in body and _DEMO_SMTP_SERVER in body
    return body.replace(DEMO_OUTBOX, "").replace(
        _DEMO_SMTP_SERVER, f'host = "{host}"\nport = {port}'
    )


def person(email: str, policy: Policy | None = None, *, roles: tuple[str, ...] = ()) -> Identity:
    """Someone acting in a test: roles from the policy's [roles] (by default the demo's),
    or exactly ``roles`` for a person that policy does not name (a second officer, say)."""
    if roles:
        return Identity(email=email, roles=frozenset(roles), source="test")
    return identify(policy or load_policy(ROOT / "compliance.toml", env={}), email, source="test")


#: The demo policy's compliance officer and a support person, as library decisions take them.
DPO = person("dpo@example.com")
SUPPORT_STAFF = person("support@example.com")
#: The command line's way of naming that person, for commands that take --by.
BY_SUPPORT = ("--by", SUPPORT_STAFF.email)


def ok(result: Result) -> str:
    """The output of a command that must succeed; its output is the message when it does not."""
    assert result.exit_code == 0, result.output
    return result.output


def ok_stdout(result: Result) -> str:
    """What a command that must succeed printed on stdout (its ``--json`` summary), without the
    progress lines a run logs to stderr once it takes a while, as any run may on a busy machine."""
    assert result.exit_code == 0, result.output
    return result.stdout


def summary(d: Deployment, *args: str) -> dict[str, Any]:
    """A command's ``--json`` summary; it must succeed."""
    return json.loads(ok_stdout(d.run("--json", *args)))


#: The files that take minutes, longest first. They are handed to the workers before the
#: rest (pyproject's --no-loadscope-reorder keeps collection order), so the two workers fill
#: the remaining time with short files and end together instead of one running a long file
#: alone at the end. Within a file the order stays as written (README's blocks build on it).
SLOW_FILES = (
    "tests/ops/test_shipped_schedule.py",
    "tests/browser/test_dashboard_in_chromium.py",
    "tests/browser/test_request_desk_in_chromium.py",
    "tests/browser/test_demo_delivery_in_chromium.py",
    "tests/test_readme.py",
    "tests/browser/test_desk_at_scale_in_chromium.py",
    "tests/browser/test_sign_in_in_chromium.py",
    "tests/browser/test_oidc_sign_in_in_chromium.py",
    "tests/test_benchmark_smoke.py",
    "tests/api/test_api_hostile_input.py",
)


assert all((ROOT / path).is_file() for path in SLOW_FILES), "SLOW_FILES names a moved file"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first = {path: rank for rank, path in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: first.get(item.nodeid.split("::", 1)[0], len(first)))


#: The system catalogs every test's CREATE SCHEMA / DROP SCHEMA leaves dead rows in: a few
#: hundred per test, over a hundred thousand per run. Catalog reads (reflection, the
#: migration template, DROP SCHEMA itself) scan them all, so with autovacuum off, as on
#: this machine's server, each run starts slower than the last (21 ms instead of 2 for
#: one table list after a few sessions' runs).
BLOATED_CATALOGS = (
    "pg_class", "pg_attribute", "pg_depend", "pg_type", "pg_constraint", "pg_index",
    "pg_attrdef", "pg_sequence", "pg_trigger", "pg_namespace", "pg_shdepend",
)  # fmt: skip
VACUUM_EVERY_S = 20.0


def vacuum_catalogs(url: str) -> None:
    """VACUUM (not FULL: nothing waits on it) the catalogs the tests churn. A role that may
    not vacuum them gets a warning from the server, not an error, and the run goes on."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM " + ", ".join(f"pg_catalog.{t}" for t in BLOATED_CATALOGS)))
    finally:
        engine.dispose()


class CatalogVacuum:
    """Keeps the test server's catalogs lean while the suite runs: once at the start, then
    every VACUUM_EVERY_S seconds from one thread of the process that leads the run."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="catalog-vacuum", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(VACUUM_EVERY_S):
            with contextlib.suppress(Exception):  # a busy or restarting server: next time
                vacuum_catalogs(self.url)


CATALOG_VACUUM = pytest.StashKey[CatalogVacuum]()


def pytest_sessionstart(session: pytest.Session) -> None:
    url = os.environ.get(PG_ENV)
    if not url or hasattr(session.config, "workerinput"):  # xdist workers: the leader does it
        return
    try:
        vacuum_catalogs(url)
    except Exception:
        return  # unreachable: the tests that need the server say so (pg_server_url)
    keeper = CatalogVacuum(url)
    keeper.thread.start()
    session.config.stash[CATALOG_VACUUM] = keeper


def pytest_sessionfinish(session: pytest.Session) -> None:
    keeper = session.config.stash.get(CATALOG_VACUUM, None)
    if keeper is not None:
        keeper.stop.set()
        keeper.thread.join(timeout=30)
        with contextlib.suppress(Exception):
            vacuum_catalogs(keeper.url)  # the next run starts lean too


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return f"PostgreSQL tests: on ({url})"
    return f"PostgreSQL tests: SKIPPED (set {PG_ENV}=postgresql+psycopg2://USER@HOST:5432/DB)"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV}, e.g. "
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
        )
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        message = f"PostgreSQL at {url} is unreachable: {str(exc).splitlines()[0]}"
        if os.environ.get(PG_REQUIRED_ENV):
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


_ADMIN_ENGINES: dict[str, Engine] = {}


def admin_engine(server_url: str) -> Engine:
    """One engine per server for creating and dropping test schemas (a connection each time
    costs more than the statement)."""
    if server_url not in _ADMIN_ENGINES:
        _ADMIN_ENGINES[server_url] = create_engine(server_url, pool_pre_ping=True)
    return _ADMIN_ENGINES[server_url]


@dataclass
class Backend:
    """Where one test's two databases live; ``url(role)`` gives each its own place."""

    name: str
    base_dir: Path
    server_url: str | None = None
    schemas: list[str] = field(default_factory=list)

    def url(self, role: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.base_dir / f'{role}.db'}"
        assert self.server_url is not None
        schema = f"pd_{uuid.uuid4().hex[:12]}_{role}"
        with admin_engine(self.server_url).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.schemas.append(schema)
        sep = "&" if "?" in self.server_url else "?"
        return f"{self.server_url}{sep}options=-csearch_path%3D{schema}"

    def cleanup(self) -> None:
        if not self.schemas:
            return
        with admin_engine(self.server_url).begin() as conn:  # type: ignore[arg-type]
            for schema in self.schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server_url")
        b = Backend("postgresql", tmp_path, server)
    else:
        b = Backend("sqlite", tmp_path)
    yield b
    b.cleanup()


def policy_text(base: str, database_url: str, app_url: str, billing_url: str = "") -> str:
    """The given policy with this test's database URLs in place of the demo ones."""
    text = base.replace('"sqlite:///var/compliance.db"', f'"{database_url}"').replace(
        '"sqlite:///var/demo_app.db"', f'"{app_url}"'
    )
    if billing_url:
        text = text.replace('"sqlite:///var/demo_billing.db"', f'"{billing_url}"')
    return text


def table_digest(engine: Engine, name: str) -> str:
    """A digest of every row of one table, in an order of their own (rows sorted as text), so
    no reflection is needed to find a key to order by: on PostgreSQL that costs more than
    reading a demo's rows."""
    quoted = engine.dialect.identifier_preparer.quote(name)
    with engine.connect() as conn:
        rows = sorted(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {quoted}")))
    digest = hashlib.sha256(f"{name}:{len(rows)}".encode())
    for row in rows:
        digest.update(row.encode())
    return digest.hexdigest()


@dataclass
class Deployment:
    """One installation of Privacy Desk as a user would have it: a policy file and two databases."""

    dir: Path
    policy_path: Path
    database_url: str
    app_url: str
    backend: str
    engines: list[Engine] = field(default_factory=list)
    #: The demo's second SQL system ([systems.billing]); "" leaves the policy's own URL.
    billing_url: str = ""

    @property
    def env(self) -> dict[str, str | None]:
        return {
            "COMPLIANCE_CONFIG": str(self.policy_path),
            "COMPLIANCE_EXPORT_DIR": str(self.dir / "exports"),
            "COMPLIANCE_ACTOR": "test-runner",
            # The policy file names this test's databases; a developer's shell must not.
            "COMPLIANCE_DATABASE_URL": None,
            "COMPLIANCE_APP_DATABASE_URL": None,
        }

    def use_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make this deployment the one in-process code (AppTest pages) finds."""
        for name, value in self.env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    def write_policy(self, body: str) -> None:
        self.policy_path.write_text(
            policy_text(body, self.database_url, self.app_url, self.billing_url)
        )
        self.__dict__.pop("_policy", None)

    def policy(self) -> Policy:
        return load_policy(self.policy_path, env={})

    @property
    def engine(self) -> Engine:
        if "_engine" not in self.__dict__:
            self.__dict__["_engine"] = make_engine(self.database_url)
            self.engines.append(self.__dict__["_engine"])
        return self.__dict__["_engine"]

    @property
    def app_engine(self) -> Engine:
        if "_app_engine" not in self.__dict__:
            self.__dict__["_app_engine"] = make_engine(self.app_url)
            self.engines.append(self.__dict__["_app_engine"])
        return self.__dict__["_app_engine"]

    @property
    def billing_engine(self) -> Engine:
        """The demo billing database, wherever this deployment's policy puts it."""
        if "_billing_engine" not in self.__dict__:
            url = self.policy().systems["billing"].url
            assert url is not None
            self.__dict__["_billing_engine"] = make_engine(url)
            self.engines.append(self.__dict__["_billing_engine"])
        return self.__dict__["_billing_engine"]

    def session(self) -> Session:
        return session_factory(self.engine)()

    def datamap(self) -> DataMap:
        return DataMap(self.policy(), self.app_engine)

    def run(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        """Run a job through the real click group, as `python -m jobs ARGS` would."""
        from jobs import commands  # noqa: F401
        from jobs.cli import cli

        return CliRunner().invoke(cli, list(args), env={**self.env, **(env or {})})

    def run_process(
        self, *args: str, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        merged = {**os.environ, **self.env, **(env or {})}
        full_env = {k: v for k, v in merged.items() if v is not None}
        return subprocess.Popen(
            [sys.executable, "-m", "jobs", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def app_rows(self, table: str, where: str = "1=1") -> list[Mapping[str, Any]]:
        with self.app_engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(text(f"SELECT * FROM {table} WHERE {where} ORDER BY 1"))
            ]

    def checksum(self, *tables: str) -> str:
        """A digest of every row of the tables, to prove they are byte-for-byte unchanged."""
        digest = hashlib.sha256()
        policy_tables = self.policy().tables
        for name in tables:
            # A table lives in its system's database (billing tables in the billing one).
            system = policy_tables[name].system if name in policy_tables else APP_SYSTEM
            engine = self.app_engine if system == APP_SYSTEM else self.billing_engine
            digest.update(table_digest(engine, name).encode())
        return digest.hexdigest()

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


EMPTY_SCHEMA_SQL = """SELECT current_schema(),
    (SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace)"""


class MigratedTemplate:
    """Alembic runs once per test process and database server; every other new compliance
    database is a copy of what it built, so a test pays milliseconds instead of a migration.

    SQLite: the migrated file itself is copied. PostgreSQL: the statements Alembic sent while
    migrating an empty schema are sent again, as the driver sent them and in one transaction,
    to the new empty schema (none names a schema, so each lands in its own search_path).
    A database that is not new, or a migration that names its schema, is migrated as before.
    """

    def __init__(self) -> None:
        self._sqlite_file: Path | None = None
        self._postgres: dict[str, str] = {}

    def migrate(self, engine: Engine) -> None:
        if engine.dialect.name == "sqlite":
            self._copy_sqlite(engine)
        elif engine.dialect.name == "postgresql":
            self._replay_postgres(engine)
        else:
            migrate(engine)

    def _copy_sqlite(self, engine: Engine) -> None:
        target = Path(engine.url.database or "")
        if not engine.url.database or target.exists():
            migrate(engine)
            return
        if self._sqlite_file is None:
            directory = Path(tempfile.mkdtemp(prefix="pd-migrated-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            template = make_engine(f"sqlite:///{directory / 'compliance.db'}")
            migrate(template)
            template.dispose()  # the last connection closed: the WAL is checkpointed away
            assert not (directory / "compliance.db-wal").exists()
            self._sqlite_file = directory / "compliance.db"
        shutil.copyfile(self._sqlite_file, target)

    def _replay_postgres(self, engine: Engine) -> None:
        key = engine.url.set(query={}).render_as_string(hide_password=False)
        with engine.connect() as conn:
            schema, relations = conn.execute(text(EMPTY_SCHEMA_SQL)).one()
        if relations or not schema:
            migrate(engine)
            return
        if key not in self._postgres:
            self._postgres[key] = self._record(engine, schema)
            return
        script = self._postgres[key]
        if not script:
            migrate(engine)
            return
        with engine.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(script)  # no parameters: the text goes as it is, in one round trip
            cursor.close()

    @staticmethod
    def _record(engine: Engine, schema: str) -> str:
        """Migrate for real and return the exact text the driver sent, statement after
        statement; "" if any of it names the schema (it would not land in a new one)."""
        sent: list[tuple[str, Any]] = []

        def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 many: bool) -> None:  # fmt: skip
            sent.append((statement, [] if many else parameters))

        event.listen(engine, "before_cursor_execute", keep)
        try:
            migrate(engine)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            script = ";\n".join(
                cursor.mogrify(statement, parameters).decode() for statement, parameters in sent
            )
            cursor.close()
        if schema in script or any(parameters == [] for _, parameters in sent):
            return ""
        return script


MIGRATED = MigratedTemplate()


def make_deployment(backend: Backend, directory: Path, body: str = DEMO_POLICY) -> Deployment:
    directory.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(
        dir=directory,
        policy_path=directory / "compliance.toml",
        database_url=backend.url("compliance"),
        app_url=backend.url("app"),
        backend=backend.name,
        billing_url=backend.url("billing"),
    )
    deployment.write_policy(body)
    MIGRATED.migrate(deployment.engine)
    return deployment


@pytest.fixture
def deployment(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    """Migrated compliance database, empty application database, demo policy."""
    d = make_deployment(backend, tmp_path / "deploy")
    yield d
    d.dispose()


def fill_demo(deployment: Deployment, *, users_count: int, seed: int) -> None:
    """The demo's application database and, when the policy has it, its billing database."""
    from compliance.demo.billing import create_demo_billing_database
    from compliance.demo.generate import create_demo_app_database

    create_demo_app_database(deployment.app_engine, users_count=users_count, seed=seed)
    if "billing" in deployment.policy().systems:
        create_demo_billing_database(deployment.billing_engine, users_count=users_count, seed=seed)


@pytest.fixture
def demo(deployment: Deployment) -> Deployment:
    """The deployment with small demo application and billing databases (400 users)."""
    fill_demo(deployment, users_count=400, seed=7)
    return deployment
