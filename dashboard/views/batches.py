"""Deletion batches: a compliance officer decides here what gets erased."""

from __future__ import annotations

import streamlit as st

from compliance.deletion.batches import (
    exclude_records,
    get_batch,
    include_records,
    plan_bulk_review,
    review_batch,
    review_batches,
)
from compliance.errors import ComplianceError
from compliance.free_text import MAX_FREE_TEXT
from compliance.reports.review_queue import BATCH_STATUSES, accepted_plan
from compliance.roles import COMPLIANCE_OFFICER
from compliance.store.states import BatchStatus
from dashboard import context, widgets

PAGE_SIZE = 25
ALL = widgets.ALL
DECIDED_KEY = "decided_batch"
FORM_NONCE = "exclude_form_nonce"
RECORDS_PAGE_SIZE = 50

widgets.require_role(COMPLIANCE_OFFICER)
policy = context.policy()
url = policy.database_url
st.title("Deletion batches")
widgets.show_flash()

left, right = st.columns(2)
buckets = [ALL, *context.batch_buckets(url)]
widgets.preset_from_query("bucket_filter", "bucket", buckets)  # links from Slack alerts
bucket = left.selectbox("Bucket", buckets, key="bucket_filter")
status = right.selectbox("Status", [*BATCH_STATUSES, ALL], key="status_filter")
page = widgets.load_page(
    "batches_page",
    PAGE_SIZE,
    lambda n, o: context.batches(url, widgets.unless_all(bucket), widgets.unless_all(status), n, o),
)
shown = ["batch_id", "bucket", "status", "records", "excluded", "held", "age_days", "reviewed_by"]
listed = widgets.table(
    page.frame[shown].fillna({"reviewed_by": ""}),
    on_select="rerun",
    selection_mode="multi-row",
    key="batch_rows",
)
widgets.pager("batches_page", page)
if page.frame.empty:
    st.stop()

# ---------------------------------------------------------------- several batches at once
chosen_rows = page.frame.iloc[list(listed.selection.rows)] if listed else page.frame.iloc[:0]
pending_rows = chosen_rows["status"] == BatchStatus.PENDING
picked = [int(b) for b in chosen_rows.loc[pending_rows, "batch_id"]]
if (page.frame["status"] == BatchStatus.PENDING).any():
    with st.expander("Decide several batches at once", expanded=bool(picked)):
        everything = context.pending_batch_ids(url, widgets.unless_all(bucket))
        # Fixed labels: the browser keeps an option's old text when a label changes.
        scope = st.radio(
            "Which batches",
            ["selected", "filter"],
            format_func={
                "selected": "The pending rows selected in the table",
                "filter": "All pending batches matching the filter",
            }.get,
            key="bulk_scope",
        )
        bulk_ids = picked if scope == "selected" else everything
        st.caption(
            f"{len(picked)} pending batch(es) selected; {len(everything)} pending batch(es) "
            "match the filter."
        )
        if not bulk_ids:
            st.caption("Select pending batches in the table (the boxes at the left of each row).")
        else:
            names = ", ".join(f"#{b}" for b in bulk_ids[:20]) + (" …" if len(bulk_ids) > 20 else "")
            st.markdown(f"**Combined impact** of {len(bulk_ids)} batch(es) ({names}):")
            try:
                widgets.table(
                    context.bulk_impact(policy, tuple(bulk_ids)), widths={"legal_basis": "large"}
                )
            except ComplianceError as exc:
                widgets.show_error(exc)
            accept_all, reject_all = st.columns(2)
            if accept_all.button(f"Accept {len(bulk_ids)} batch(es)…", key="bulk_accept"):
                widgets.ask_confirmation("bulk_accept", batch_ids=bulk_ids)
            if reject_all.button(f"Reject {len(bulk_ids)} batch(es)…", key="bulk_reject"):
                widgets.ask_confirmation("bulk_reject", batch_ids=bulk_ids)

# Labels name what never changes with a decision (the status shows on the badge below):
# the browser keeps showing an option's old label for the same value after a rerun.
labels = {
    int(r.batch_id): f"#{r.batch_id} · {r.bucket} · {r.records} records"
    for r in page.frame.itertuples()
}
decided = st.session_state.get(DECIDED_KEY)
if decided is not None and decided not in labels:
    # The batch just decided has left the filtered list; keep it open until another is chosen.
    try:
        with context.session(policy) as s:
            done = get_batch(s, decided)
        size = context.batch_records(url, decided, 1, 0).total
        labels = {decided: f"#{done.id} · {done.bucket} · {size} records", **labels}
    except ComplianceError:
        st.session_state.pop(DECIDED_KEY, None)
batch_id: int | None = st.selectbox(
    "Open a batch", list(labels), format_func=lambda b: labels[b], key="open_batch"
)
if batch_id is None:  # every option is a batch on this page, so only an empty page
    st.stop()
if batch_id != decided:
    st.session_state.pop(DECIDED_KEY, None)
try:
    with context.session(policy) as s:
        batch = get_batch(s, int(batch_id))
except ComplianceError as exc:
    widgets.show_error(exc)
    st.stop()

st.subheader(f"Batch {batch.id} · {batch.bucket}")
widgets.status_badge(batch.reviewed_status)
actor = context.identity()
if batch.reviewed_status != BatchStatus.PENDING:
    when = batch.reviewed_at.strftime("%Y-%m-%d %H:%M UTC") if batch.reviewed_at else "?"
    decided_text = f"{batch.reviewed_status.capitalize()} by {batch.reviewed_by} at {when}."
    st.info(widgets.plain(decided_text))
    if batch.reviewed_reason:
        widgets.show_text("Reason", batch.reviewed_reason)
    with context.session(policy) as s:
        plan_hash, plan = accepted_plan(s, batch.id)
    if plan_hash:
        st.markdown(
            "**Accepted plan** — what `apply-deletions` may do to these subjects, and no more "
            f"(plan `{plan_hash[:12]}`):"
        )
        widgets.table(plan)
else:
    st.markdown("**Impact preview** — what accepting this batch would do (nothing is changed):")
    try:
        widgets.table(context.batch_impact(policy, batch.id), widths={"legal_basis": "large"})
    except ComplianceError as exc:
        widgets.show_error(exc)
    accept, reject = st.columns(2)
    if accept.button("Accept batch…", type="primary", key="accept"):
        widgets.ask_confirmation("accept", batch_id=batch.id)
    if reject.button("Reject batch…", key="reject"):
        widgets.ask_confirmation("reject", batch_id=batch.id)

records = widgets.load_page(
    f"records_page_{batch.id}",
    RECORDS_PAGE_SIZE,
    lambda n, o: context.batch_records(url, batch.id, n, o),
)
st.markdown("**Records** — and why each is due, as the application database says now")
shown_records = records.frame.drop(columns=["profile_id", "created_at"])
evidence_headers: dict[str, str] = {}
try:
    proof = context.record_evidence(
        policy, batch.bucket, tuple(str(k) for k in records.frame["subject_id"])
    )
except ComplianceError as exc:
    widgets.show_error(exc)
else:
    if proof.columns:
        extra = proof.frame.rename(columns={"subject_id": "_key"})
        shown_records = (
            shown_records.assign(_key=shown_records["subject_id"].astype(str))
            .merge(extra, on="_key", how="left")
            .drop(columns="_key")
        )
        order = ["record_id", "subject_id", *(c.name for c in proof.columns)]
        shown_records = shown_records[order + [c for c in shown_records if c not in order]]
        evidence_headers = {
            c.name: widgets.header(c.header) if c.kind == "value" else c.header
            for c in proof.columns
        }
        st.caption(
            "; ".join(f"{c.header}: {c.meaning}" for c in proof.columns if c.kind != "value")
            + ". Read live, never stored."
        )
    elif batch.bucket not in policy.buckets:
        st.caption("The data subject asked for erasure (a DSAR request); no rule to show.")
# Nine columns or more at 1400 px: the free-text note gives way so nothing hides on the right.
widgets.table(shown_records, headers=evidence_headers, widths={"note": 150})
widgets.pager(f"records_page_{batch.id}", records)


SUBJECT_OF = dict(zip(records.frame["record_id"], records.frame["subject_id"], strict=True))


def record_label(record_id: int) -> str:
    subject = SUBJECT_OF.get(record_id)
    return f"record {record_id} (subject {subject})" if subject is not None else str(record_id)


if batch.reviewed_status == BatchStatus.PENDING and not records.frame.empty:
    excluded = records.frame.loc[records.frame["flags"].str.startswith("excluded"), "record_id"]
    candidates = records.frame.loc[~records.frame["record_id"].isin(excluded), "record_id"]
    # The form keeps what was chosen when it is refused; after a success a new nonce gives
    # fresh, empty widgets.
    nonce = st.session_state.get(FORM_NONCE, 0)
    with st.form(f"exclude_{nonce}"):
        chosen = st.multiselect(
            "Exclude records (kept, never erased)",
            candidates.tolist(),
            format_func=record_label,
            key=f"exclude_records_{nonce}",
        )
        note = st.text_input(
            "Note (why these records are kept)",
            key=f"exclude_note_{nonce}",
            max_chars=MAX_FREE_TEXT,
        )
        hold = st.checkbox(
            "Also place a legal hold on these subjects (kept out of every bucket until lifted; "
            "the note is the hold's reason)",
            key=f"exclude_hold_{nonce}",
        )
        if st.form_submit_button("Exclude selected"):
            if not chosen:
                st.error("Choose at least one record to exclude.")
            else:

                def exclude() -> str:
                    keep = dict.fromkeys((int(r) for r in chosen), note)
                    with context.session(policy) as s:
                        done = exclude_records(s, batch.id, keep, actor=actor, hold=hold)
                    st.session_state[FORM_NONCE] = nonce + 1
                    placed = ", ".join(map(str, done.holds))
                    held = f" Placed legal hold(s) {placed}." if placed else ""
                    return f"Excluded {done.excluded} record(s) from batch {batch.id}.{held}"

                widgets.run_action(exclude)

    if not excluded.empty:
        with st.form(f"include_{nonce}"):
            back = st.multiselect(
                "Put excluded records back (the batch is not decided yet)",
                excluded.tolist(),
                format_func=record_label,
                key=f"include_records_{nonce}",
            )
            if st.form_submit_button("Put back"):
                if not back:
                    st.error("Choose at least one excluded record to put back.")
                else:

                    def include() -> str:
                        with context.session(policy) as s:
                            count = include_records(
                                s, batch.id, [int(r) for r in back], actor=actor
                            )
                        st.session_state[FORM_NONCE] = nonce + 1
                        return f"Put {count} record(s) back into batch {batch.id}."

                    widgets.run_action(include)

bulk = widgets.pending_confirmation("bulk_accept") or widgets.pending_confirmation("bulk_reject")
if bulk:
    bulk_decision = "accept" if bulk["action"] == "bulk_accept" else "reject"
    targets: list[int] = bulk["batch_ids"]

    def decide_all(reason: str | None) -> str:
        with context.session(policy) as s:
            plan = plan_bulk_review(s, bulk_decision, batch_ids=targets)
            result = review_batches(
                s, plan, reviewer=actor, reason=reason, execute=True, policy=policy
            )
        done = ", ".join(f"#{r.batch_id}" for r in result.decided) or "none"
        message = (
            f"{len(result.decided)} batch(es) {bulk_decision}ed ({done}): "
            f"{sum(r.accepted for r in result.decided)} records to erase, "
            f"{sum(r.excluded + r.rejected for r in result.decided)} kept."
        )
        for batch_id, why in result.skipped:
            message += f" Skipped #{batch_id}: {why}."
        return message

    widgets.confirm_dialog(
        f"{bulk_decision.capitalize()} {len(targets)} batch(es)?",
        (
            "Each batch is decided and audited on its own; one decided by someone else "
            "meanwhile is skipped and reported. "
            + (
                "Accepted records are erased by the next `apply-deletions` run."
                if bulk_decision == "accept"
                else "Every record of these batches is kept. Say why, for the audit trail."
            )
        ),
        confirm_label=f"{bulk_decision.capitalize()} {len(targets)} batch(es)",
        on_confirm=decide_all,
        reason_label="Reason" if bulk_decision == "reject" else None,
        reason_required="Rejecting batches needs a reason." if bulk_decision == "reject" else None,
    )

pending = widgets.pending_confirmation("accept") or widgets.pending_confirmation("reject")
if pending:
    target, action = pending["batch_id"], pending["action"]

    def decide(reason: str | None) -> str:
        # Kept open afterwards, also when someone else decided first: the page says who.
        st.session_state[DECIDED_KEY] = target
        with context.session(policy) as s:
            result = review_batch(
                s, target, action, reviewer=actor, reason=reason, policy=policy, execute=True
            )
        return (
            f"Batch {target} {result.decision}: {result.accepted} to erase, "
            f"{result.excluded} excluded, {result.rejected} rejected."
        )

    if pending["action"] == "accept":
        widgets.confirm_dialog(
            f"Accept batch {target}?",
            "Accepted records are erased by the next `apply-deletions` run. This cannot be undone.",
            confirm_label="Accept and schedule erasure",
            on_confirm=decide,
        )
    else:
        widgets.confirm_dialog(
            f"Reject batch {target}?",
            "Every record in the batch is kept. Say why, for the audit trail.",
            confirm_label="Reject batch",
            on_confirm=decide,
            reason_label="Reason",
            reason_required="Rejecting a batch needs a reason.",
        )
