"""Portability (GDPR Art. 20): the access export restricted to what the subject provided
(``[tables.X] portable = true``), JSON and CSV, delivered like an access export."""

from __future__ import annotations

import json
import re
import zipfile

from sqlalchemy import func, select

from compliance.dsar.delivery import redeem_delivery
from compliance.storage import export_store
from compliance.store.models import DsarRequest, ErasureTask
from tests.desk_rights import IDENTITY, SUPPORT, Desk
from tests.desk_rights import desk as desk  # the fixture
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

PORTABLE = {"users", "workflows", "support_tickets"}  # as the shipped policy marks them


def test_a_portability_export_holds_only_what_the_subject_provided_and_is_delivered(
    desk: Desk,
) -> None:
    body = desk.d.policy_path.read_text()
    desk.d.policy_path.write_text(body.replace("auto_deliver = false", "auto_deliver = true", 1))
    assert {n for n, t in desk.d.policy().tables.items() if t.portable} == PORTABLE
    email = desk.d.app_rows("users", "id = 42")[0]["email"]
    reference = desk.submit("portability", "42", *IDENTITY)
    assert "in a machine-readable form" in desk.notice(reference, "acknowledgement")
    desk.approve(reference)

    result = desk.process()  # built and, with auto_deliver, its link sent at once
    assert (result.exported, result.delivered, result.completed) == (1, [reference], [reference])
    row = desk.request(reference)
    assert row.status == "completed" and row.export_path
    with zipfile.ZipFile(row.export_path) as archive:
        names = set(archive.namelist())
        document = json.loads(archive.read("data.json"))
        readme = archive.read("README.txt").decode()
    assert set(document["tables"]) == PORTABLE
    assert document["request"]["kind"] == "portability"
    assert [u["id"] for u in document["tables"]["users"]] == [42]
    assert "password_hash" not in document["tables"]["users"][0]
    assert names == {f"app_database/{t}.csv" for t in PORTABLE} | {
        "data.json", "README.txt", "manifest.json",
    }  # fmt: skip
    assert "the personal data you provided to us (GDPR Art. 20)" in readme
    with desk.d.session() as s:  # no other system is asked: it holds no data they provided
        assert s.scalar(select(func.count()).select_from(ErasureTask)) == 0

    link, code = (m.get_body(("plain",)).get_content() for m in desk.inbox.messages[-2:])  # type: ignore[union-attr]
    assert {m["To"] for m in desk.inbox.messages[-2:]} == {email}
    token = re.search(r"token=(\S+)", link).group(1)  # type: ignore[union-attr]
    otp = re.search(r"code is (\d{6})", code).group(1)  # type: ignore[union-attr]
    with desk.d.session() as s:
        download = redeem_delivery(s, token, otp, policy=desk.d.policy())
    assert download.content == export_store(desk.d.policy()).read(row.export_path)
    assert "Your export is ready: the data you gave us" in desk.notice(reference, "completion")
    assert {"dsar.export_ready", "dsar.delivery_created", "dsar.completed"} <= set(
        desk.timeline(reference)
    )


def test_portability_without_a_portable_table_is_refused_and_nothing_is_logged(
    desk: Desk,
) -> None:
    desk.d.policy_path.write_text(desk.d.policy_path.read_text().replace("portable = true", ""))
    result = desk.run("submit-dsar", "--kind", "portability", "--subject-id", "42",
                      "--requested-by", SUPPORT, "--execute")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "Error: no table of the data map is marked portable ([tables.NAME] portable = true): "
        "a portability request would export nothing"
    ]
    with desk.d.session() as s:
        assert s.scalar(select(func.count()).select_from(DsarRequest)) == 0
