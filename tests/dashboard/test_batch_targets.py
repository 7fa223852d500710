"""The batches page acts on the batch the officer saw, or on nothing (SQLite and PostgreSQL).

A link names a bucket or a batch: the page shows exactly that one, or says it cannot. A
decision carries the version of the preview it was taken on; the library refuses it once
the batch changed. Keeping every record of a batch is an action of its own, asked first.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from compliance.deletion.exclusions import exclude_records
from compliance.deletion.review import get_batch
from compliance.store.models import AuditEvent, ComplianceProfile, DeletionRecord, LegalHold
from tests.conftest import DPO, Deployment, ok
from tests.dashboard.conftest import (
    OFFICER,
    OpenApp,
    button,
    pending_batch,
    signed_in_app,
    texts,
)
from tests.dashboard.test_batches_page import open_batch


def run_json(d: Deployment, *args: str) -> Any:
    result = d.run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


#: A bucket the policy gains during a test, so its first batch appears after the page has
#: read (and cached) its lists.
NEW_BUCKET = "dormant_tokens"


def first_batch(d: Deployment, subject_id: str = "7") -> int:
    """A bucket added to the policy and its first batch, holding one subject's record."""
    d.policy_path.write_text(
        d.policy_path.read_text()
        + f"""
[buckets.{NEW_BUCKET}]
description = "API tokens of one subject, for a test"
tables = ["api_tokens"]
rules = [{{ sql = "SELECT id FROM users WHERE id = {subject_id}", description = "Chosen" }}]
"""
    )
    ok(d.run("create-deletion-records", "--bucket", NEW_BUCKET, "--execute"))
    made = run_json(d, "create-deletion-batches", "--bucket", NEW_BUCKET, "--execute")
    return int(made["batch_ids"][0])


def open_link(d: Deployment, **query: str) -> AppTest:
    """The dashboard opened from a link by the officer, as a new tab would (``open_app``
    has put the proxy in place where the demo picker is not offered)."""
    at = signed_in_app(d, OFFICER, **query)
    assert not at.exception, at.exception
    return at


def shown_batch(at: AppTest) -> Any:
    return at.selectbox(key="open_batch").value


def record_ids(d: Deployment, batch_id: int) -> list[int]:
    with d.session() as s:
        return list(
            s.scalars(
                select(DeletionRecord.id)
                .where(DeletionRecord.deletion_batch_id == batch_id)
                .order_by(DeletionRecord.id)
            )
        )


def test_a_link_to_a_bucket_opened_right_after_its_first_batch_shows_that_batch(
    queue: Deployment, open_app: OpenApp
) -> None:
    # The page has read (and cached) the bucket list before the new bucket had a batch.
    at = open_app(OFFICER)
    assert NEW_BUCKET not in at.selectbox(key="bucket_filter").options
    batch_id = first_batch(queue)

    at = open_link(queue, bucket=NEW_BUCKET)
    assert at.selectbox(key="bucket_filter").value == NEW_BUCKET
    assert shown_batch(at) == batch_id
    assert f"Batch {batch_id} · {NEW_BUCKET}" in [s.value for s in at.subheader]
    assert set(at.dataframe[0].value["bucket"]) == {NEW_BUCKET}


def test_a_link_to_a_bucket_without_batches_says_so_and_opens_nothing(
    queue: Deployment, open_app: OpenApp
) -> None:
    open_app(OFFICER)
    at = open_link(queue, bucket="dsar_erasure")

    assert at.selectbox(key="bucket_filter").value == "dsar_erasure"
    assert any("Bucket dsar_erasure has no deletion batch" in t for t in texts(at, "info"))
    assert not [s for s in at.selectbox if s.key == "open_batch"]
    assert not [s.value for s in at.subheader if s.value.startswith("Batch ")]


def test_a_link_to_a_batch_opens_it_or_says_it_is_not_there(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue, "inactive_accounts")
    at = open_link(queue, batch=str(batch_id), bucket="inactive_accounts")
    assert shown_batch(at) == batch_id

    # A link naming a batch and another bucket says so, and opens none of that bucket's.
    pending_batch(queue, "closed_accounts")
    at = open_link(queue, batch=str(batch_id), bucket="closed_accounts")
    assert shown_batch(at) is None
    assert any(
        f"batch {batch_id} is in bucket inactive_accounts, not closed_accounts" in t
        for t in texts(at, "warning")
    ), texts(at, "warning")

    at = open_link(queue, batch="999999")
    assert shown_batch(at) is None
    assert any(
        "Cannot open the batch asked for: no deletion batch with id 999999" in t
        for t in texts(at, "warning")
    )
    assert not [s.value for s in at.subheader if s.value.startswith("Batch ")]


def test_a_decided_batch_stays_open_instead_of_the_next_one(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    # A colleague decides it from the command line; the list of pending batches loses it.
    ok(queue.run("review-batch", str(batch_id), "--reject", "--reason", "Test accounts",
                 "--reviewer", OFFICER, "--execute"))  # fmt: skip
    at.run()
    assert shown_batch(at) == batch_id
    assert any(t.startswith("Rejected by") for t in texts(at, "info"))


def test_the_decision_dialog_names_batch_bucket_and_record_count(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    button(at, "Accept batch…").click().run()
    said = " ".join(texts(at, "markdown"))
    assert f"You accept batch {batch_id} (closed_accounts, 5 records)" in said


def test_an_acceptance_on_a_preview_that_changed_since_is_refused(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    button(at, "Accept batch…").click().run()
    # A colleague excludes a record while the dialog is open.
    first = record_ids(queue, batch_id)[0]
    with queue.session() as s:
        exclude_records(s, batch_id, {first: "Customer in a dispute"}, actor=DPO)
    button(at, "Accept and schedule erasure").click().run()

    assert any(
        f"batch {batch_id} changed since you looked (excluded records 0 → 1); nothing was "
        "decided" in t
        for t in texts(at, "error")
    )
    with queue.session() as s:
        assert get_batch(s, batch_id).reviewed_status == "pending"
    # The page shows the batch as it is now; deciding on that goes through.
    button(at, "Accept batch…").click().run()
    assert "1 excluded" in " ".join(texts(at, "markdown"))
    button(at, "Accept and schedule erasure").click().run()
    assert f"Batch {batch_id} accepted: 4 to erase, 1 excluded, 0 rejected." in texts(at, "success")


def test_a_bulk_acceptance_on_a_stale_preview_decides_no_batch(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_batch(open_app, pending_batch(queue))
    at.radio(key="bulk_scope").set_value("filter").run()
    button(at, f"Accept {len(at.dataframe[0].value)} batch(es)…").click().run()
    said = " ".join(texts(at, "markdown"))
    changed = pending_batch(queue)
    assert f"batch {changed} (closed_accounts, 5 records)" in said
    with queue.session() as s:
        exclude_records(s, changed, {record_ids(queue, changed)[0]: "Dispute"}, actor=DPO)
    confirm = [b for b in at.button if b.label.startswith("Accept ") and "…" not in b.label]
    confirm[0].click().run()

    assert any(f"batch {changed} changed since you looked" in t for t in texts(at, "error"))
    with queue.session() as s:
        decided = s.scalars(
            select(AuditEvent.id).where(AuditEvent.action == "deletion_batch.accepted")
        ).all()
    assert len(decided) == 1  # the demo's one accepted batch, none of these


def test_selecting_every_record_asks_before_excluding_them_all(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    everyone = record_ids(queue, batch_id)

    at.multiselect(key="exclude_records_0").set_value(everyone)
    at.text_input(key="exclude_note_0").input("Test accounts")
    button(at, "Exclude selected").click().run()

    # Nothing excluded yet: a dialog asks, naming the batch and its records, the note kept.
    with queue.session() as s:
        assert get_batch(s, batch_id).reviewed_status == "pending"
        assert not s.scalars(
            select(DeletionRecord.id).where(DeletionRecord.accepted_for_deletion.is_(False))
        ).all()
    said = " ".join(texts(at, "markdown"))
    assert f"You keep all 5 record(s) of batch {batch_id} (closed_accounts, 5 records)" in said
    assert at.text_area(key="confirm_reason").value == "Test accounts"
    button(at, "Exclude all 5 record(s)").click().run()

    assert any("Excluded all 5 record(s)" in t for t in texts(at, "success"))
    with queue.session() as s:
        kept = s.scalars(
            select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id == batch_id,
                DeletionRecord.accepted_for_deletion.is_(False),
            )
        ).all()
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert sorted(kept) == everyone
    assert event is not None and event.action == "deletion_records.excluded"
    assert json.loads(json.dumps(event.details))["record_ids"] == everyone


def test_every_record_chosen_with_a_hold_asked_for_is_excluded_and_every_subject_held(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    everyone = record_ids(queue, batch_id)
    at.multiselect(key="exclude_records_0").set_value(everyone)
    at.text_input(key="exclude_note_0").input("Court order 12/26")
    at.checkbox(key="exclude_hold_0").check()
    button(at, "Exclude selected").click().run()
    said = " ".join(texts(at, "markdown"))
    assert "Each of their subjects also gets a legal hold, the note its reason." in said
    button(at, f"Exclude all {len(everyone)} record(s)").click().run()

    with queue.session() as s:
        subjects = set(
            s.scalars(
                select(ComplianceProfile.id)
                .join(DeletionRecord)
                .where(DeletionRecord.deletion_batch_id == batch_id)
            )
        )
        holds = s.scalars(select(LegalHold)).all()
    assert {h.compliance_profile_id for h in holds} == subjects
    assert {h.reason for h in holds} == {"Court order 12/26"}
    assert any(f"Placed legal hold(s) {holds[0].id}" in t for t in texts(at, "success"))


def test_the_exclude_all_button_needs_a_note_and_offers_no_select_all(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    assert at.multiselect(key="exclude_records_0").proto.select_all == 0  # no "Select all"

    button(at, "Exclude all 5 record(s) still awaiting the decision…").click().run()
    button(at, "Exclude all 5 record(s)").click().run()
    assert "Excluding every record needs a note saying why." in texts(at, "error")
    with queue.session() as s:
        assert not s.scalars(
            select(DeletionRecord.id).where(DeletionRecord.accepted_for_deletion.is_(False))
        ).all()
