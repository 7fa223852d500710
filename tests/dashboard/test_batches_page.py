"""The Deletion batches page, as a compliance officer lives it (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from compliance.deletion.review import get_batch, review_batch
from compliance.reports.review_queue import pending_batch_ids
from compliance.store.models import AuditEvent, ComplianceProfile, DeletionRecord, LegalHold
from tests.conftest import Deployment, person
from tests.dashboard.conftest import (
    APP,
    OFFICER,
    SIGNED_IN_AS,
    OpenApp,
    button,
    demo_picker_offered,
    pending_batch,
    texts,
)


def open_batch(open_app: OpenApp, batch_id: int) -> AppTest:
    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("closed_accounts").run()
    at.selectbox(key="open_batch").set_value(batch_id).run()
    assert not at.exception, at.exception
    return at


def batch_state(queue: Deployment, batch_id: int) -> tuple[str, str | None, str | None]:
    with queue.session() as session:
        batch = get_batch(session, batch_id)
        return batch.reviewed_status, batch.reviewed_by, batch.reviewed_reason


def test_an_officer_sees_pending_batches_with_counts_and_an_impact_preview(
    queue: Deployment, open_app: OpenApp
) -> None:
    before = queue.checksum("users", "activity_logs", "invoices")
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)

    assert texts(at, "title") == ["Deletion batches"]
    listed = at.dataframe[0].value
    assert set(listed["bucket"]) == {"closed_accounts"}
    assert (listed["records"] > 0).all()
    assert listed["status"].str.endswith("pending").all()
    impact = at.dataframe[1].value
    assert set(impact["action"]) <= {"delete", "anonymize", "retain"}
    assert "invoices" in set(impact.loc[impact["action"] == "retain", "table"])
    assert impact.loc[impact["table"] == "users", "rows"].iloc[0] == 5
    records = at.dataframe[2].value
    assert list(records.columns[:2]) == ["record_id", "subject_id"]
    assert len(records) == 5
    # Retained rows say why they stay.
    retained = impact.set_index("table").loc["invoices"]
    assert retained["legal_basis"].startswith("Accounting law")
    # The preview changed nothing.
    assert queue.checksum("users", "activity_logs", "invoices") == before


def test_accepting_a_batch_through_the_confirmation_dialog(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)

    button(at, "Accept batch…").click().run()
    assert batch_state(queue, batch_id)[0] == "pending"  # opening the dialog decides nothing
    button(at, "Accept and schedule erasure").click().run()

    assert batch_state(queue, batch_id) == ("accepted", OFFICER, None)
    assert any(f"Batch {batch_id} accepted" in t for t in texts(at, "success"))
    with queue.session() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.actor, event.target_id) == (
        "deletion_batch.accepted",
        OFFICER,
        str(batch_id),
    )


def test_rejecting_a_batch_requires_a_reason(queue: Deployment, open_app: OpenApp) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)

    button(at, "Reject batch…").click().run()
    button(at, "Reject batch").click().run()

    assert "Rejecting a batch needs a reason." in texts(at, "error")
    assert batch_state(queue, batch_id) == ("pending", None, None)


def test_rejecting_a_batch_with_a_reason_keeps_every_record(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)

    button(at, "Reject batch…").click().run()
    at.text_area(key="confirm_reason").input("Rule matched test accounts").run()
    button(at, "Reject batch").click().run()

    assert batch_state(queue, batch_id) == ("rejected", OFFICER, "Rule matched test accounts")
    with queue.session() as session:
        kept = session.scalars(
            select(DeletionRecord.accepted_for_deletion).where(
                DeletionRecord.deletion_batch_id == batch_id
            )
        ).all()
    assert kept and set(kept) == {False}


def test_excluding_a_record_with_a_note_keeps_it_out_of_the_deletion(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    record_id = int(at.dataframe[2].value["record_id"].iloc[0])

    at.multiselect(key="exclude_records_0").set_value([record_id])
    at.text_input(key="exclude_note_0").input("Legal hold")
    button(at, "Exclude selected").click().run()
    assert f"Excluded 1 record(s) from batch {batch_id}." in texts(at, "success")

    records = at.dataframe[2].value.set_index("record_id")
    assert records.loc[record_id, "flags"] == "excluded, manually reviewed"
    # The note is read whole under the table, beside its record.
    assert "Legal hold" in [t.value for t in at.text]
    assert any(c.value.startswith(f"Record {record_id} ") for c in at.caption)
    # Accepting now leaves the excluded record out.
    button(at, "Accept batch…").click().run()
    button(at, "Accept and schedule erasure").click().run()
    with queue.session() as session:
        record = session.get(DeletionRecord, record_id)
        accepted = session.scalars(
            select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id == batch_id,
                DeletionRecord.accepted_for_deletion.is_(True),
            )
        ).all()
    assert record.accepted_for_deletion is False
    assert len(accepted) == 4 and record_id not in accepted


def test_excluding_with_a_legal_hold_places_it_with_the_note_as_reason(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    shown = at.dataframe[2].value.set_index("record_id")
    record_id = int(shown.index[0])

    at.multiselect(key="exclude_records_0").set_value([record_id])
    at.text_input(key="exclude_note_0").input("Court order 12/26")
    at.checkbox(key="exclude_hold_0").check()
    button(at, "Exclude selected").click().run()

    with queue.session() as session:
        hold = session.scalars(select(LegalHold)).one()
        subject = session.get(ComplianceProfile, hold.compliance_profile_id).subject_id
    assert f"Excluded 1 record(s) from batch {batch_id}. Placed legal hold(s) {hold.id}." in texts(
        at, "success"
    )
    assert hold.reason == "Court order 12/26" and hold.placed_by == "dpo@example.com"
    assert str(subject) == str(shown.loc[record_id, "subject_id"])
    # Held and excluded: it can be put back, and is not offered for exclusion again.
    assert (
        at.dataframe[2]
        .value.set_index("record_id")
        .loc[record_id, "flags"]
        .startswith("on legal hold, excluded")
    )
    label = f"record {record_id} ("
    assert any(o.startswith(label) for o in at.multiselect(key="include_records_1").options)
    assert not any(o.startswith(label) for o in at.multiselect(key="exclude_records_1").options)


def test_excluding_records_needs_a_note(queue: Deployment, open_app: OpenApp) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    record_id = int(at.dataframe[2].value["record_id"].iloc[0])

    at.multiselect(key="exclude_records_0").set_value([record_id])
    button(at, "Exclude selected").click().run()

    errors = " ".join(texts(at, "error"))
    assert f"Exclude records: record {record_id} needs a note saying why it is kept" in errors
    with queue.session() as session:
        assert session.get(DeletionRecord, record_id).accepted_for_deletion is None
    # The refused form keeps the officer's choice: only the note is missing.
    assert at.multiselect(key="exclude_records_0").value == [record_id]
    at.text_input(key="exclude_note_0").input("Customer asked to keep it")
    button(at, "Exclude selected").click().run()
    assert f"Excluded 1 record(s) from batch {batch_id}." in texts(at, "success")


def test_a_decision_made_meanwhile_by_someone_else_is_shown_and_nothing_changes(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    button(at, "Reject batch…").click().run()
    at.text_area(key="confirm_reason").input("Looks wrong")

    # A colleague accepts the batch from the command line while the dialog is open.
    with queue.session() as session:
        review_batch(
            session,
            batch_id,
            "accept",
            reviewer=person("colleague@example.com", roles=("compliance_officer",)),
            execute=True,
        )
    button(at, "Reject batch").click().run()

    errors = texts(at, "error")
    assert any(
        f"batch {batch_id} was already accepted by colleague@example.com at" in e for e in errors
    ), errors
    assert batch_state(queue, batch_id) == ("accepted", "colleague@example.com", None)
    # The page now shows who decided and when, and offers no decision.
    assert any("Accepted by colleague@example.com" in t for t in texts(at, "info"))
    assert "Accept batch…" not in [b.label for b in at.button]


def test_a_link_from_a_slack_alert_opens_the_batches_of_its_bucket(
    queue: Deployment, open_app: OpenApp
) -> None:
    from compliance.ops.alerts import batches_url
    from compliance.policy.model import SlackSettings

    link = batches_url(SlackSettings(dashboard_url="http://localhost:8501"), "closed_accounts")
    assert link == "http://localhost:8501/deletion_batches?bucket=closed_accounts"
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["bucket"] = "closed_accounts"
    if demo_picker_offered(queue):  # opened before choosing who you are, then chosen
        at.run()
        at.selectbox(key="demo_user").select(OFFICER).run()
    else:  # behind the proxy the person arrives signed in (open_app put it in place)
        at.session_state[SIGNED_IN_AS] = OFFICER
        at.run()
    assert at.selectbox(key="bucket_filter").value == "closed_accounts"
    shown = {label.split(" · ")[1] for label in at.selectbox(key="open_batch").options}
    assert shown == {"closed_accounts"}


def test_an_exclusion_can_be_undone_until_the_batch_is_decided(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    record_id = int(at.dataframe[2].value["record_id"].iloc[0])
    at.multiselect(key="exclude_records_0").set_value([record_id])
    at.text_input(key="exclude_note_0").input("Wrong person?")
    button(at, "Exclude selected").click().run()
    # After a success the form is empty again.
    assert at.multiselect(key="exclude_records_1").value == []

    at.multiselect(key="include_records_1").set_value([record_id])
    button(at, "Put back").click().run()

    assert f"Put 1 record(s) back into batch {batch_id}." in texts(at, "success")
    records = at.dataframe[2].value.set_index("record_id")
    assert records.loc[record_id, "flags"] == ""
    with queue.session() as session:
        record = session.get(DeletionRecord, record_id)
        assert (record.accepted_for_deletion, record.review_note) == (None, None)
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.actor, event.details["record_ids"]) == (
        "deletion_records.included",
        OFFICER,
        [record_id],
    )
    assert at.dataframe[0].value.set_index("batch_id").loc[batch_id, "excluded"] == 0


def test_a_rejected_batch_shows_its_records_as_rejected_not_excluded(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    button(at, "Reject batch…").click().run()
    at.text_area(key="confirm_reason").input("Rule matched test accounts")
    button(at, "Reject batch").click().run()

    at.selectbox(key="status_filter").set_value("rejected").run()
    listed = at.dataframe[0].value.set_index("batch_id")
    assert listed.loc[batch_id, "excluded"] == 0
    assert listed.loc[batch_id, "status"] == "rejected"
    at.selectbox(key="open_batch").set_value(batch_id).run()
    assert set(at.dataframe[1].value["flags"]) == {"rejected"}


def test_after_a_decision_the_batch_stays_open_and_the_selector_says_nothing_stale(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    at = open_batch(open_app, batch_id)
    button(at, "Accept batch…").click().run()
    button(at, "Accept and schedule erasure").click().run()

    selector = at.selectbox(key="open_batch")
    assert selector.value == batch_id
    # No option claims a status: the badge next to the open batch says it.
    assert not [o for o in selector.options if "pending" in o or "accepted" in o]
    assert any(f"Accepted by {OFFICER}" in t for t in texts(at, "info"))


def test_subject_ids_sort_as_numbers(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("inactive_accounts").run()
    subjects = at.dataframe[2].value["subject_id"]
    assert subjects.dtype.kind == "i"
    ordered = subjects.sort_values().tolist()
    assert ordered == sorted(int(s) for s in subjects)


def test_each_record_shows_why_it_is_due(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("inactive_accounts").run()
    records = at.dataframe[-1].value
    assert list(records.columns[:6]) == [
        "record_id", "subject_id", "users.last_login_at", "rule_2", "users.plan", "users.country",
    ]  # fmt: skip
    assert set(records["rule_2"]) == {"yes"}
    assert records["users.last_login_at"].notna().all()
    assert any(
        "users.last_login_at: newest last_login_at in users; due when older than 730 days" in c
        and "Not anonymized yet" in c
        for c in texts(at, "caption")
    )


def test_all_pending_batches_matching_the_filter_are_decided_in_one_confirmation(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("closed_accounts").run()
    at.radio(key="bulk_scope").set_value("filter").run()
    with queue.session() as session:
        ids = pending_batch_ids(session, bucket="closed_accounts")
        records = session.scalar(
            select(func.count()).where(DeletionRecord.deletion_batch_id.in_(ids))
        )
    # One users row per subject: the combined preview adds up every batch's.
    combined = at.dataframe[1].value.set_index("table")
    assert len(ids) > 2 and combined.loc["users", "rows"] == records

    button(at, f"Reject {len(ids)} batch(es)…").click().run()
    button(at, f"Reject {len(ids)} batch(es)").click().run()
    assert "Rejecting batches needs a reason." in texts(at, "error")
    at.text_area(key="confirm_reason").input("Test accounts matched the rule")
    # Meanwhile a colleague accepts one of them.
    with queue.session() as session:
        review_batch(
            session,
            ids[0],
            "accept",
            reviewer=person("colleague@example.com", roles=("compliance_officer",)),
            execute=True,
        )
    button(at, f"Reject {len(ids)} batch(es)").click().run()

    (message,) = [t for t in texts(at, "success") if "rejected" in t]
    assert message.startswith(f"{len(ids) - 1} batch(es) rejected")
    assert f"Skipped #{ids[0]}: batch {ids[0]} was already accepted by colleague@example.com" in (
        message
    )
    assert batch_state(queue, ids[0])[0] == "accepted"
    assert {batch_state(queue, b) for b in ids[1:]} == {
        ("rejected", OFFICER, "Test accounts matched the rule")
    }
