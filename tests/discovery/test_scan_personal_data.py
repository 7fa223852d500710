"""scan-personal-data: every planted column of personal data is found, nothing else is, and the
scan reads without writing, on SQLite and PostgreSQL (issue 28).

One deployment per backend holds the demo plus a schema with each kind of personal data
planted where the policy misses it: unmapped tables and a view, columns an anonymizing
erasure leaves as they are, a retained table; beside it a second SQL system, a music shop's
catalogue, that holds no personal data at all.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)

from compliance.discovery.findings import last_findings, run_scan
from compliance.errors import ConfigError, PermissionDenied
from compliance.policy.loader import parse_policy
from compliance.store.models import AuditEvent, ScanFinding
from tests.conftest import (
    DEMO_POLICY,
    DPO,
    Backend,
    Deployment,
    fill_demo,
    make_deployment,
    person,
)
from tests.slack_stub import SlackStub

ACCEPTED_REASON = "our own office's addresses, no customer's"
PLANTED_POLICY = (
    DEMO_POLICY.replace(
        'export_exclude = ["password_hash"]', 'export_exclude = ["password_hash", "birth_date"]', 1
    ).replace(
        "[buckets.closed_accounts]\n",
        '[buckets.closed_accounts]\nrecipients = ["=HYPERLINK(\\"http://evil.example\\")"]\n',
        1,
    )
    + f"""
[systems.catalog]
kind = "sql"
url = "CATALOG_URL"

[scan]
accept = [
  {{ column = "app_database.marketing_leads.seen_from", reason = "{ACCEPTED_REASON}" }},
  {{ column = "app_database.old_leads.email", reason = "dropped last year" }},
]
"""
)

EMAILS = ["ada.lead@example.org", "bo.lead@example.org", "cy.lead@example.net"]
PHONES = ["+44 20 7946 0958", "+1 202 555 0143", "+33 1 42 68 53 00"]
IBANS = ["NL91ABNA0417164300", "DE89370400440532013000", "GB29NWBK60161331926819"]
IPS = ["203.0.113.5", "198.51.100.7", "2001:db8::1"]
NATIONAL_IDS = {
    "us_ref": ["536-90-4399", "123-45-6789", "412-34-5670"],  # US SSN, as written
    "uk_ref": ["JG103759A", "AB123456C", "CE123456D"],  # UK NINO
    "fr_ref": ["295109912611193", "185057512345673", "270013800012390"],  # FR NIR
    "de_number": ["76491326687", "74807351724", "32507918550"],  # DE IdNr
    "es_ref": ["54362315K", "12345678Z", "87654321X"],  # ES DNI
    "nie_ref": ["X2482300W", "Y1234567X", "Z7654321H"],  # ES NIE
    "nl_number": ["111222333", "123456782", "010464554"],  # NL BSN
    "it_ref": ["RCCMNL83S18D969H", "MRTMTT91D08F205J", "BNCMRA80A01H501A"],  # IT CF
    "company_ref": ["DE136695976", "NL004495445B01", "FR40303265045"],  # EU VAT
}
PLANTED_VALUES = [*EMAILS, *PHONES, *IBANS, *IPS, *(v for vs in NATIONAL_IDS.values() for v in vs)]

#: Every planted column: (table, column) -> (category, status).
EXPECTED = {
    ("marketing_leads", "contact"): ("email", "uncovered"),
    ("marketing_leads", "mobile"): ("phone", "uncovered"),
    ("marketing_leads", "payout"): ("iban", "uncovered"),
    ("marketing_leads", "seen_from"): ("ip_address", "accepted"),
    ("marketing_leads", "full_name"): ("name", "uncovered"),
    ("marketing_leads", "street_address"): ("postal_address", "uncovered"),
    ("marketing_leads", "date_of_birth"): ("birth_date", "uncovered"),
    **{("identity_checks", c): ("national_id", "uncovered") for c in NATIONAL_IDS},
    ("lead_contacts", "contact"): ("email", "uncovered"),
    ("lead_contacts", "full_name"): ("name", "uncovered"),
    ("odd_things", "email"): ("email", "uncovered"),
    ("empty_signups", "email"): ("email", "uncovered"),
    ("users", "address"): ("postal_address", "left_as_is"),
    ("users", "birth_date"): ("birth_date", "left_as_is"),
    ("invoices", "billing_iban"): ("iban", "retained"),
    # The demo's own, as the policy handles them.
    ("users", "email"): ("email", "anonymized"),
    ("users", "full_name"): ("name", "anonymized"),
    ("users", "phone"): ("phone", "anonymized"),
    ("invoices", "billing_name"): ("name", "retained"),
    ("invoices", "billing_address"): ("postal_address", "retained"),
    ("activity_logs", "ip_address"): ("ip_address", "deleted"),
}


def plant(d: Deployment) -> None:
    """Personal data the demo policy misses, and odd tables, in the application database."""
    meta = MetaData()
    leads = Table(
        "marketing_leads", meta,
        Column("id", Integer, primary_key=True), Column("contact", String(255)),
        Column("mobile", String(40)), Column("payout", String(40)), Column("seen_from", String(45)),
        Column("full_name", String(100)), Column("street_address", Text),
        Column("date_of_birth", Date), Column("notes", Text), Column("score", Integer),
    )  # fmt: skip
    checks = Table(
        "identity_checks", meta, Column("id", Integer, primary_key=True),
        *(Column(name, String(40)) for name in NATIONAL_IDS),
    )  # fmt: skip
    odd = Table(
        "odd_things", meta, Column("id", Integer, primary_key=True), Column("profile", JSON),
        Column("photo", LargeBinary), Column("email", String(255)), Column("remark", Text),
    )  # fmt: skip
    Table("empty_signups", meta, Column("id", Integer, primary_key=True), Column("email", Text))
    meta.create_all(d.app_engine)
    with d.app_engine.begin() as conn:
        conn.execute(insert(leads), [
            {"id": i + 1, "contact": EMAILS[i], "mobile": PHONES[i], "payout": IBANS[i],
             "seen_from": IPS[i], "full_name": name, "street_address": f"{i + 1} Harbour Road",
             "date_of_birth": date(1980 + i, 1 + i, 2), "notes": "called twice", "score": 7}
            for i, name in enumerate(["Ada Lovelace", "Bo Kim", "Cy Dubois"])
        ])  # fmt: skip
        conn.execute(insert(checks), [
            {"id": i + 1, **{name: values[i] for name, values in NATIONAL_IDS.items()}}
            for i in range(3)
        ])  # fmt: skip
        conn.execute(insert(odd), [{"id": 1, "profile": {"x": 1}, "photo": b"\x89PNG"}])
        conn.execute(
            text("CREATE VIEW lead_contacts AS SELECT contact, full_name FROM marketing_leads")
        )
        if d.backend == "sqlite":  # a view over a table that is gone: its columns cannot be read
            conn.execute(text("CREATE VIEW broken_report AS SELECT * FROM gone_table"))
        else:  # a view that fails when read
            conn.execute(
                text(
                    "CREATE VIEW broken_report AS SELECT 1 / (count(*) - count(*)) AS r FROM users"
                )
            )
        # An anonymizing erasure leaves these as they are; a retained table keeps its IBANs.
        conn.execute(text("ALTER TABLE users ADD COLUMN address TEXT"))
        conn.execute(text("ALTER TABLE users ADD COLUMN birth_date DATE"))
        conn.execute(text("UPDATE users SET address = 'Quai 4, Lyon', birth_date = '1979-04-03'"))
        conn.execute(text("ALTER TABLE invoices ADD COLUMN billing_iban VARCHAR(40)"))
        conn.execute(text(f"UPDATE invoices SET billing_iban = '{IBANS[1]}'"))


def music_shop(url: str) -> None:
    """A realistic catalogue without a person in it: products, artists, albums, tracks, and
    the shop's own stores (an address, but nobody's)."""
    from compliance.store.engines import make_engine

    meta = MetaData()
    tables = {
        "products": Table("products", meta, Column("id", Integer, primary_key=True),
                          Column("sku", String(20)), Column("name", String(200)),
                          Column("description", Text), Column("ean", String(13)),
                          Column("price", Numeric(10, 2)), Column("weight_kg", Numeric(6, 3)),
                          Column("active", Boolean), Column("created_at", DateTime)),
        "artists": Table("artists", meta, Column("id", Integer, primary_key=True),
                         Column("name", String(120))),
        "albums": Table("albums", meta, Column("id", Integer, primary_key=True),
                        Column("title", String(160)), Column("artist_id", Integer),
                        Column("release_date", Date), Column("label", String(80))),
        "genres": Table("genres", meta, Column("id", Integer, primary_key=True),
                        Column("name", String(120))),
        "media_types": Table("media_types", meta, Column("id", Integer, primary_key=True),
                             Column("name", String(120))),
        "tracks": Table("tracks", meta, Column("id", Integer, primary_key=True),
                        Column("name", String(200)), Column("album_id", Integer),
                        Column("genre_id", Integer), Column("media_type_id", Integer),
                        Column("composer", String(220)), Column("milliseconds", Integer),
                        Column("bytes", Integer), Column("unit_price", Numeric(10, 2)),
                        Column("isrc", String(12))),
        "playlists": Table("playlists", meta, Column("id", Integer, primary_key=True),
                           Column("name", String(120))),
        "stores": Table("stores", meta, Column("id", Integer, primary_key=True),
                        Column("name", String(120)), Column("street", String(120)),
                        Column("city", String(80)), Column("postcode", String(10)),
                        Column("opened_on", Date)),
    }  # fmt: skip
    engine = make_engine(url)
    meta.create_all(engine)
    rows = {
        "products": [
            {"id": i, "sku": f"SKU-{1000 + i}", "name": n, "description": f"{n}, boxed",
             "ean": ean, "price": 9.99 + i, "weight_kg": 0.25, "active": True,
             "created_at": datetime(2024, 1, i)}
            for i, (n, ean) in enumerate([("Vinyl cleaning brush", "4006381333931"),
                                          ("Turntable mat", "5901234123457"),
                                          ("Record sleeve pack", "9780201379624")], 1)
        ],
        "artists": [{"id": i, "name": n} for i, n in enumerate(
            ["AC/DC", "Accept", "Aerosmith", "Alanis Morissette", "Antônio Carlos Jobim"], 1)],
        "albums": [{"id": i, "title": t, "artist_id": i, "release_date": date(1980 + i, 5, 1),
                    "label": "Atlantic"} for i, t in enumerate(
            ["For Those About To Rock", "Balls to the Wall", "Big Ones", "Jagged Little Pill",
             "Warner 25 Anos"], 1)],
        "genres": [{"id": i, "name": n} for i, n in enumerate(
            ["Rock", "Jazz", "Metal", "Alternative & Punk", "Bossa Nova"], 1)],
        "media_types": [{"id": i, "name": n} for i, n in enumerate(
            ["MPEG audio file", "Protected AAC audio file", "AAC audio file"], 1)],
        "tracks": [{"id": i, "name": n, "album_id": i, "genre_id": 1, "media_type_id": 1,
                    "composer": c, "milliseconds": 343719 + i, "bytes": 11170334 + i,
                    "unit_price": 0.99, "isrc": f"USAT2{i:07d}"} for i, (n, c) in enumerate(
            [("For Those About To Rock", "Angus Young, Malcolm Young, Brian Johnson"),
             ("Balls to the Wall", "U. Dirkschneider, W. Hoffmann, H. Frank"),
             ("Walk On Water", "Steven Tyler, Joe Perry, Jack Blades, Tommy Shaw"),
             ("You Oughta Know", "Alanis Morissette & Glenn Ballard"),
             ("Desafinado", None)], 1)],
        "playlists": [{"id": i, "name": n} for i, n in enumerate(
            ["Music", "Movies", "90's Music", "Brazilian Music"], 1)],
        "stores": [{"id": i, "name": f"Records {c}", "street": st, "city": c, "postcode": pc,
                    "opened_on": date(2001 + i, 3, 1)} for i, (st, c, pc) in enumerate(
            [("Rue de Rivoli 10", "Paris", "75001"), ("Hauptstraße 5", "Berlin", "10115"),
             ("Kalverstraat 1", "Amsterdam", "1012 NX")], 1)],
    }  # fmt: skip
    with engine.begin() as conn:
        for name, values in rows.items():
            conn.execute(insert(tables[name]), values)
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def planted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp(f"scan-{request.param}")
    server = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    backend = Backend(request.param, base, server)
    catalog = backend.url("catalog")
    d = make_deployment(backend, base / "deploy", PLANTED_POLICY.replace("CATALOG_URL", catalog))
    fill_demo(d, users_count=30, seed=5)
    plant(d)
    music_shop(catalog)
    yield d
    d.dispose()
    backend.cleanup()


def report(result: Result) -> dict:
    return json.loads(result.stdout)


def findings(data: dict, system: str = "app_database") -> dict[tuple[str, str], dict]:
    (scanned,) = [s for s in data["systems"] if s["name"] == system]
    return {(f["table"], f["column"]): f for f in scanned["findings"]}


def app_digest(d: Deployment) -> list[tuple[str, list[str]]]:
    """Every row of every application table (PostgreSQL's BYTEA read as bytes, not as a
    memoryview whose repr names an address)."""
    tables = []
    with d.app_engine.connect() as conn:
        for name in sorted(inspect(d.app_engine).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            shown = [repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row))
                     for row in rows]  # fmt: skip
            tables.append((name, sorted(shown)))
    return tables


def test_every_planted_column_is_found_and_nothing_more_without_a_write(
    planted: Deployment,
) -> None:
    before = app_digest(planted)
    result = planted.run("scan-personal-data", "--system", "app_database", "--json")
    assert result.exit_code == 1, result.output
    assert app_digest(planted) == before, "the scan changed the application database"
    found = findings(report(result))
    assert {k: (f["category"], f["status"]) for k, f in found.items()} == EXPECTED
    # Values found them where no name says what they hold; and each finding is counts only.
    assert "email-validator" in found[("marketing_leads", "contact")]["recognisers"]
    assert "schwifty" in found[("marketing_leads", "payout")]["recognisers"]
    recognised = {c: found[("identity_checks", c)]["recognisers"] for c in NATIONAL_IDS}
    assert recognised["uk_ref"] == ["HMRC NINO rules"]
    assert recognised["nl_number"] == ["python-stdnum nl.bsn"]
    assert recognised["company_ref"] == ["python-stdnum eu.vat"]
    assert found[("marketing_leads", "contact")]["matched"] == 3
    assert found[("invoices", "billing_iban")]["detail"].startswith("Accounting law")
    assert found[("marketing_leads", "seen_from")]["detail"] == ACCEPTED_REASON
    assert found[("users", "birth_date")]["export_excluded"] is True
    for value in PLANTED_VALUES:  # never a sampled value, in JSON or in words
        assert value not in result.output
    # Odd tables are lines in the report, never a traceback.
    (app,) = [s for s in report(result)["systems"] if s["name"] == "app_database"]
    notes = "\n".join(app["notes"])
    assert "view broken_report: " in notes and "Traceback" not in result.output
    assert "odd_things: binary column(s) photo not read" in notes
    assert "odd_things: JSON column(s) profile judged by name only" in notes
    assert "odd_things: column(s) email, remark held only NULL" in notes
    assert "table empty_signups: empty, judged by column names only" in notes
    assert "scan.accept: app_database.old_leads.email names no column of this system" in notes
    assert "Failed: personal data no erasure reaches: app_database.empty_signups.email" in (
        result.stderr
    )


def test_a_music_shop_catalogue_holds_no_personal_data(planted: Deployment) -> None:
    result = planted.run("scan-personal-data", "--system", "catalog", "--json")
    assert result.exit_code == 0, result.output
    (catalog,) = report(result)["systems"]
    assert (catalog["tables"], catalog["findings"], catalog["coverage"]) == (8, [], None)


def test_the_report_lists_each_kind_with_its_legal_basis_and_coverage(
    planted: Deployment,
) -> None:
    result = planted.run("scan-personal-data")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    basis = "Accounting law: invoices are kept 10 years (HGB §257, AO §147)"
    expected = [  # (start, end) of a line the report must hold
        ("app_database: ", "29 personal, 4 deleted or anonymized by erasure; coverage 28%"),
        ("  uncovered (in tables no erasure reaches): marketing_leads.contact (email address; "
         "email-validator; 3 of 3 sampled values matched)", ""),
        ("  left as they are by erasure (anonymized tables): users.address (postal address; "
         "column name, value shape; 30 of 30 sampled values matched)", ""),
        ("  kept under retain: invoices.billing_iban (bank account (IBAN)", f"— {basis}"),
        ("  accepted in [scan] accept: marketing_leads.seen_from (IP address; ipaddress; 3 of 3 "
         "sampled values matched)", f"— {ACCEPTED_REASON}"),
        ("  excluded from access exports: users.birth_date (date of birth)", ""),
        ("billing: 2 tables and views, 11 columns; 2 personal, 2 deleted or anonymized by erasure; "
         "coverage 100%", ""),
        ("catalog: 8 tables and views, 38 columns; 0 personal, 0 deleted or anonymized by "
         "erasure; no personal data found", ""),
        ("newsletter: not scannable: a manual system", ""),
    ]  # fmt: skip
    for start, end in expected:
        assert any(x.startswith(start) and x.endswith(end) for x in lines), (start, result.stdout)
    assert lines[-1].startswith("[DRY RUN] Would store the findings of app_database, billing")


def test_bucket_erasing_the_subjects_table_warns_once_of_columns_it_leaves(
    planted: Deployment,
) -> None:
    for command in (["create-deletion-records", "--bucket", "closed_accounts"], ["init-db"]):
        result = planted.run(*command)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if "policy.warning" in line]
        assert len(warnings) == 1, (command, result.stderr)
        assert (
            "bucket inactive_accounts, bucket closed_accounts and erasure requests leave personal "
            "columns of users as they are: address (postal address), birth_date (date of birth)"
        ) in warnings[0]


def test_bad_input_and_a_system_that_is_down(planted: Deployment, tmp_path: Path) -> None:
    for args, message in [
        (["--sample", "0"], "--sample must be from 1 to 10000, got 0"),
        (["--sample", "10001"], "--sample must be from 1 to 10000, got 10001"),
        (["--sample", "many"], "--sample must be a whole number, got 'many'"),
        (["--system", "crm"], "unknown system 'crm' (known: app_database, billing, newsletter, "
                              "catalog)"),
        (["--system", "newsletter"], "--system: 'newsletter' is a manual system; only sql systems"),
    ]:  # fmt: skip
        result = planted.run("scan-personal-data", *args)
        assert result.exit_code == 2, (args, result.output)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and message in line, line
        assert "Traceback" not in result.output
    down = tmp_path / "down.toml"
    down.write_text(planted.policy_path.read_text().replace(
        planted.policy().systems["billing"].url or "", "postgresql+psycopg2://nobody@127.0.0.1:1/gone"
    ))  # fmt: skip
    result = planted.run(
        "scan-personal-data", "--system", "billing", env={"COMPLIANCE_CONFIG": str(down)}
    )
    assert result.exit_code == 1, result.output
    assert (
        'billing: cannot be read: connection to server at "127.0.0.1", port 1 failed'
        in result.stdout
    )
    assert "Failed: cannot read billing" in result.stderr and "Traceback" not in result.output


def test_records_of_processing_in_three_formats(planted: Deployment) -> None:
    assert planted.run("scan-personal-data", "--execute").exit_code == 1  # findings stored
    markdown = planted.run("records-of-processing")
    assert markdown.exit_code == 0, markdown.output
    text_ = markdown.stdout
    assert "- Controller (a): Example GmbH, Musterstraße 1, 10115 Berlin" in text_
    assert "- Data protection officer (a): dpo@example.com" in text_
    assert (
        "## closed_accounts" in text_
        and "Purpose (Art. 30(1)(b)): Providing the workflow service" in text_
    )
    assert "  - postal address (users.address)" in text_
    assert "## tables: invoices, payments" in text_
    assert "  - bank account (IBAN) (invoices.billing_iban)" in text_
    assert (
        "- Transfers to third countries (e): not set ([buckets.inactive_accounts] transfers)"
        in (text_)
    )
    rows = list(
        csv.DictReader(io.StringIO(planted.run("records-of-processing", "--format", "csv").stdout))
    )
    closed = next(r for r in rows if r["activity"] == "closed_accounts")
    assert closed["recipients"].startswith("'=HYPERLINK")  # a formula stays text
    assert closed["data_subjects"] == "former account holders"
    assert "30 days after the newest users.closed_at" in closed["erasure_time_limits"]
    document = json.loads(planted.run("records-of-processing", "--format", "json").stdout)
    assert [a["name"] for a in document["activities"]] == [
        "stale_support_tickets",
        "inactive_accounts",
        "closed_accounts",
        "tables: invoices, payments",
    ]
    assert document["security_measures"][1] == (
        "Every erasure reviewed by a compliance officer; hash-chained audit log"
    )


def test_only_an_officer_runs_the_scan_from_the_library(planted: Deployment) -> None:
    manager = person("ceo@example.com", planted.policy())
    with (
        planted.session() as s,
        pytest.raises(PermissionDenied, match="may not run the personal data scan"),
    ):
        run_scan(s, planted.policy(), by=manager)
    with planted.session() as s:
        report_, plan = run_scan(s, planted.policy(), by=person(DPO.email, planted.policy()))
        assert plan.systems == ("app_database", "billing", "catalog") and report_.failed
        stored = {
            (f.table, f.column): (str(f.category), str(f.status))
            for f in last_findings(s, "app_database")
        }
        assert stored == EXPECTED
        assert s.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) in (
            "scan.recorded", "alert.posted",
        )  # fmt: skip


# ---------------------------------------------------------------- the demo, and the alert


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


def test_the_demo_scans_clean_and_a_new_unmapped_table_alerts_once(
    deployment: Deployment, slack: SlackStub
) -> None:
    d = deployment
    fill_demo(d, users_count=30, seed=9)
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": slack.base_url}
    clean = d.run("scan-personal-data", "--execute", env=env)
    assert clean.exit_code == 0, clean.output
    assert "coverage 100%" in clean.stdout
    # Every job's start-up check has nothing to say about the demo's subjects table.
    quiet = d.run("create-deletion-records", "--bucket", "closed_accounts")
    assert quiet.exit_code == 0 and "policy.warning" not in quiet.stderr, quiet.stderr
    assert not slack.posts()
    with d.session() as s:
        assert {(f.system, f.table, f.column) for f in last_findings(s)} >= {
            ("app_database", "users", "email"), ("billing", "billing_customers", "billing_email"),
        }  # fmt: skip

    with d.app_engine.begin() as conn:
        conn.execute(text("CREATE TABLE newsletter_signups (id INTEGER PRIMARY KEY, address TEXT)"))
        conn.execute(text("INSERT INTO newsletter_signups VALUES (1, 'ann@example.org'), "
                          "(2, 'ben@example.org'), (3, 'cem@example.org')"))  # fmt: skip
    slack.fail_channel("#privacy-desk-test")
    failed = d.run("scan-personal-data", "--execute", env=env)
    assert failed.exit_code == 1
    assert "app_database.newsletter_signups.address" in failed.stderr
    assert "Alert failed: 1 new uncovered column(s)" in failed.stdout
    slack.heal_channel("#privacy-desk-test")
    for _ in range(2):  # announced once the channel works, then not again
        again = d.run("scan-personal-data", "--execute", env=env)
        assert again.exit_code == 1
    posts = [p for p in slack.posts() if p.channel == "#privacy-desk-test"]
    assert len(posts) == 2  # the failed try, the one that got through, and no more
    assert "app_database.newsletter_signups.address (email address)" in (posts[-1].text or "")
    assert "data_map?system=app_database&table=newsletter_signups" in (posts[-1].text or "")
    assert "ann@example.org" not in (posts[-1].text or "")
    with d.session() as s:
        (row,) = s.scalars(
            select(ScanFinding).where(ScanFinding.table_name == "newsletter_signups")
        )
        assert (row.status, row.category, row.alerted_at is not None) == (
            "uncovered",
            "email",
            True,
        )


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("scan", {"accept": [{"column": "users.email", "reason": "x"}]},
         "scan.accept[0].column: 'users.email' is not system.table.column"),
        ("scan", {"accept": [{"column": "crm.leads.email", "reason": "x"}]},
         "'crm' is not a declared sql system (known: app_database, billing)"),
        ("scan", {"accept": [{"column": "newsletter.a.b", "reason": "x"}]},
         "scan.accept[0].column: 'newsletter' is not a declared sql system"),
        ("scan", {"accept": [{"column": "app_database.users.country"}]},
         "scan.accept[0].reason: missing (why the column may stay as it is)"),
        ("scan", {"accept": [{"column": "app_database.users.country", "reason": " "}]},
         "scan.accept[0].reason: expected some text"),
        ("scan", {"accept": [{"column": "app_database.users.country", "reason": "a"}] * 2},
         "scan.accept[1].column: 'app_database.users.country' is accepted twice"),
        ("scan", {"ops_chanel": "#x"}, "scan.ops_chanel: unknown key"),
        ("records", {"controller": ""}, "records.controller: expected some text"),
        ("records", {"security_measures": "TLS"}, "records.security_measures: expected list"),
        ("records", {"dpo": "x"}, "records.dpo: unknown key"),
    ],
)  # fmt: skip
def test_the_new_policy_keys_are_checked_when_it_loads(
    section: str, value: dict, message: str
) -> None:
    data = tomllib.loads(DEMO_POLICY)
    data[section] = value
    with pytest.raises(ConfigError) as refused:
        parse_policy(data, env={})
    assert message in str(refused.value)


def test_a_bucket_s_art_30_keys_are_checked_when_it_loads() -> None:
    data = tomllib.loads(DEMO_POLICY)
    data["buckets"]["closed_accounts"]["recipients"] = ["the accountants", 3]
    with pytest.raises(ConfigError, match=r"buckets.closed_accounts.recipients\[1\]: expected str"):
        parse_policy(data, env={})
    data["buckets"]["closed_accounts"]["recipients"] = ["the accountants"]
    data["buckets"]["closed_accounts"]["purpose"] = "  "
    with pytest.raises(ConfigError, match=r"buckets\.closed_accounts\.purpose: expected some text"):
        parse_policy(data, env={})
