"""Deletion batches: a compliance officer decides here what gets erased."""

from __future__ import annotations

import streamlit as st

from compliance.deletion.batches import exclude_records, get_batch, review_batch
from compliance.deletion.holds import place_hold, plan_place_hold
from compliance.errors import ComplianceError
from compliance.reports.review_queue import BATCH_STATUSES, accepted_plan
from compliance.roles import COMPLIANCE_OFFICER
from compliance.store.states import BatchStatus
from dashboard import context, widgets

PAGE_SIZE = 25
ALL = widgets.ALL
DECIDED_KEY = "decided_batch"
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
table = page.frame.assign(status=page.frame["status"].map(widgets.status_label))
shown = ["batch_id", "bucket", "status", "records", "excluded", "held", "age_days", "reviewed_by"]
st.dataframe(table[shown], hide_index=True, width="stretch", column_config=widgets.labels(shown))
widgets.pager("batches_page", page)
if page.frame.empty:
    st.stop()

labels = {
    int(r.batch_id): f"#{r.batch_id} · {r.bucket} · {r.status} · {r.records} records"
    for r in page.frame.itertuples()
}
decided = st.session_state.pop(DECIDED_KEY, None)
if decided is not None and decided not in labels:  # keep showing the batch just decided
    labels = {decided: f"#{decided} (just decided)", **labels}
batch_id: int | None = st.selectbox(
    "Open a batch", list(labels), format_func=lambda b: labels[b], key="open_batch"
)
if batch_id is None:  # every option is a batch on this page, so only an empty page
    st.stop()
try:
    with context.session(policy) as s:
        batch = get_batch(s, int(batch_id))
except ComplianceError as exc:
    st.error(widgets.plain(exc))
    st.stop()

st.subheader(f"Batch {batch.id} · {batch.bucket}")
widgets.status_badge(batch.reviewed_status)
actor = context.identity()
if batch.reviewed_status != BatchStatus.PENDING:
    when = batch.reviewed_at.strftime("%Y-%m-%d %H:%M UTC") if batch.reviewed_at else "?"
    decided = f"{batch.reviewed_status.capitalize()} by {batch.reviewed_by} at {when}."
    st.info(widgets.plain(decided))
    if batch.reviewed_reason:
        widgets.show_text("Reason", batch.reviewed_reason)
    with context.session(policy) as s:
        plan_hash, plan = accepted_plan(s, batch.id)
    if plan_hash:
        st.markdown(
            "**Accepted plan** — what `apply-deletions` may do to these subjects, and no more "
            f"(plan `{plan_hash[:12]}`):"
        )
        st.dataframe(plan, hide_index=True, column_config=widgets.labels(plan.columns))
else:
    st.markdown("**Impact preview** — what accepting this batch would do (nothing is changed):")
    try:
        st.dataframe(context.batch_impact(policy, batch.id), hide_index=True)
    except ComplianceError as exc:
        st.error(widgets.plain(exc))
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
st.markdown("**Records**")
st.dataframe(
    records.frame,
    hide_index=True,
    width="stretch",
    column_config=widgets.labels(records.frame.columns),
)
widgets.pager(f"records_page_{batch.id}", records)

if batch.reviewed_status == BatchStatus.PENDING and not records.frame.empty:
    with st.form("exclude", clear_on_submit=True):
        chosen = st.multiselect("Exclude records (kept, never erased)", records.frame["record_id"])
        note = st.text_input("Note (why these records are kept)")
        hold = st.checkbox(
            "Also place a legal hold on these subjects (kept out of every bucket until lifted; "
            "the note is the hold's reason)"
        )
        if st.form_submit_button("Exclude selected"):
            if not chosen:
                st.error("Choose at least one record to exclude.")
            elif not note.strip():
                st.error("Excluding records needs a note saying why.")
            else:

                def exclude() -> str:
                    keep = dict.fromkeys((int(r) for r in chosen), note.strip())
                    subjects = records.frame.set_index("record_id").loc[list(keep), "subject_id"]
                    with context.session(policy) as s:
                        count = exclude_records(s, batch.id, keep, actor=actor)
                        placed = [
                            place_hold(
                                s, plan_place_hold(s, subject_id=str(k), reason=note, by=actor)
                            ).id
                            for k in (subjects if hold else [])
                        ]
                    held = f" Placed legal hold(s) {', '.join(map(str, placed))}." if placed else ""
                    return f"Excluded {count} record(s) from batch {batch.id}.{held}"

                widgets.run_action(exclude)

pending = widgets.pending_confirmation("accept") or widgets.pending_confirmation("reject")
if pending:
    target, action = pending["batch_id"], pending["action"]

    def decide(reason: str | None) -> str:
        st.session_state[DECIDED_KEY] = target
        with context.session(policy) as s:
            result = review_batch(
                s, target, action, reviewer=context.identity(), reason=reason, policy=policy
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
