"""The Data map page: systems, tables and columns with what erasure does, the last scan's
findings highlighted, the scan run from the page, and the Art. 30 record to download."""

from __future__ import annotations

from sqlalchemy import select, text

from compliance.discovery.findings import last_findings, run_scan
from compliance.store.models import AuditEvent
from tests.conftest import DPO, Deployment
from tests.dashboard.conftest import MANAGER, OFFICER, OpenApp, button, texts

PAGE = "views/data_map.py"


def graph(at) -> str:  # type: ignore[no-untyped-def]
    (chart,) = at.get("graphviz_chart")
    return str(chart.proto.spec)


def downloads(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(b.proto.label) for b in at.get("download_button")]


def test_an_officer_runs_the_scan_from_the_page_and_the_demo_is_covered(
    open_app: OpenApp, queue: Deployment
) -> None:
    at = open_app(OFFICER, PAGE)
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Data map"]
    assert any("No scan stored yet" in t for t in texts(at, "info"))
    button(at, "Run the scan now").click().run()
    assert not at.exception, at.exception
    assert texts(at, "success") == ["Scanned 2 system(s): nothing uncovered."]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Uncovered"] == "0" and metrics["Coverage"] == "100%"
    assert metrics["Retained"] == "2"  # the invoices' billing name and address
    assert '"t:users" [label="users\\nanonymize · subjects table"' in graph(at)
    assert '"t:workflow_logs" -> "t:workflow_runs" [label="workflow_run_id"]' in graph(at)
    assert downloads(at) == ["Markdown", "CSV", "JSON"]
    # The subjects table opens first: each column with what erasure does and what was found.
    assert at.selectbox(key="map_table_app_database").value == "users"
    columns = at.dataframe[-1].value.set_index("column")
    assert columns.loc["email", "erasure"] == "anonymize (hash)"
    assert columns.loc["email", "last_scan"] == "email address: anonymized"
    assert columns.loc["password_hash", "export"] == "excluded"
    with queue.session() as s:
        assert {f.key for f in last_findings(s)} >= {"app_database.users.email"}
        actors = s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "scan.recorded"))
        assert list(actors) == [OFFICER]


def test_an_unmapped_table_of_emails_stands_out_in_red(
    open_app: OpenApp, queue: Deployment
) -> None:
    with queue.app_engine.begin() as conn:
        conn.execute(text("CREATE TABLE newsletter_signups (id INTEGER PRIMARY KEY, address TEXT)"))
        conn.execute(text("INSERT INTO newsletter_signups VALUES (1, 'ann@example.org'), "
                          "(2, 'ben@example.org'), (3, 'cem@example.org')"))  # fmt: skip
    with queue.session() as s:
        run_scan(s, queue.policy(), by=DPO)
    at = open_app(OFFICER, PAGE)
    assert not at.exception, at.exception
    (error,) = texts(at, "error")
    assert "Personal data no erasure reaches: app_database.newsletter_signups.address" in error
    assert ('"t:newsletter_signups" [label="newsletter_signups\\nnot mapped · 1 uncovered", '
            'fillcolor="#fca5a5"') in graph(at)  # fmt: skip
    assert at.selectbox(key="map_table_app_database").value == "newsletter_signups"
    columns = at.dataframe[-1].value.set_index("column")
    assert columns.loc["address", "last_scan"] == "email address: uncovered"
    assert columns.loc["address", "recognisers"] == "email-validator"
    assert "ann@example.org" not in str(at)  # never a sampled value


def test_a_manager_reads_the_map_but_may_not_run_the_scan(open_app: OpenApp) -> None:
    at = open_app(MANAGER, PAGE)
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Data map"]
    assert "Run the scan now" not in [b.label for b in at.button]
    assert downloads(at) == ["Markdown", "CSV", "JSON"]
    at.selectbox(key="map_system").select("newsletter").run()
    assert any("not scannable: a manual system" in t for t in texts(at, "info"))
