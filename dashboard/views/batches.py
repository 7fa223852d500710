"""Deletion batches: a compliance officer decides here what gets erased."""

from __future__ import annotations

from typing import Any

import streamlit as st

from compliance.deletion.exclusions import exclude_all_records, exclude_records, include_records
from compliance.deletion.review import get_batch, plan_bulk_review, review_batch, review_batches
from compliance.errors import ComplianceError, NotFound
from compliance.free_text import MAX_FREE_TEXT
from compliance.reports.review_queue import BATCH_STATUSES, accepted_plan
from compliance.roles import COMPLIANCE_OFFICER
from compliance.store.states import BatchStatus, RecordState
from dashboard import context, widgets

PAGE_SIZE = 25
ALL = widgets.ALL
OPENED_KEY = "opened_batch"
FORM_NONCE = "exclude_form_nonce"
RECORDS_PAGE_SIZE = 50

widgets.require_role(COMPLIANCE_OFFICER)
policy = context.policy()
url = policy.database_url
st.title("Deletion batches")
widgets.show_flash()

left, right = st.columns(2)
buckets = [ALL, *context.batch_buckets(url)]
# A link (a Slack alert's ?bucket=) names a bucket: the list shows exactly that bucket, even
# one that has no batch yet (read afresh: the cached list follows the database's version).
linked_bucket = st.query_params.get("bucket")
if linked_bucket and linked_bucket not in buckets:
    buckets.append(linked_bucket)
widgets.preset_from_query("bucket_filter", "bucket", buckets)


def new_filter() -> None:
    """Another filter is another list: its first batch opens, not the one open before."""
    st.session_state.pop(OPENED_KEY, None)


def follow_bucket() -> None:
    """The address names the bucket shown, so a reload or a shared link shows it again."""
    new_filter()
    chosen = st.session_state["bucket_filter"]
    if chosen == ALL:
        st.query_params.pop("bucket", None)
    else:
        st.query_params["bucket"] = chosen


bucket = left.selectbox("Bucket", buckets, key="bucket_filter", on_change=follow_bucket)
status = right.selectbox(
    "Status", [*BATCH_STATUSES, ALL], key="status_filter", on_change=new_filter
)
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
if bucket != ALL and bucket not in context.batch_buckets(url):
    st.info(widgets.plain(f"Bucket {bucket} has no deletion batch (yet): nothing is opened."))
elif page.frame.empty and status != ALL:
    where = f" of bucket {bucket}" if bucket != ALL else ""
    st.info(
        widgets.plain(f"No {status} deletion batch{where}; choose Status: all to see the others.")
    )

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
                combined, bulk_targets = context.bulk_preview(policy, tuple(bulk_ids))
            except ComplianceError as exc:
                widgets.show_error(exc)
            else:
                widgets.table(combined, widths={"legal_basis": "large"})
                # The dialog decides what this preview showed, or nothing.
                seen: dict[str, Any] = {
                    "batch_ids": bulk_ids,
                    "versions": {b: t.version for b, t in bulk_targets.items()},
                    "labels": [t.label for t in bulk_targets.values()],
                }
                accept_all, reject_all = st.columns(2)
                if accept_all.button(f"Accept {len(bulk_ids)} batch(es)…", key="bulk_accept"):
                    widgets.ask_confirmation("bulk_accept", **seen)
                if reject_all.button(f"Reject {len(bulk_ids)} batch(es)…", key="bulk_reject"):
                    widgets.ask_confirmation("bulk_reject", **seen)

# Labels name what never changes with a decision (the status shows on the badge below):
# the browser keeps showing an option's old label for the same value after a rerun.
labels = {
    int(r.batch_id): f"#{r.batch_id} · {r.bucket} · {r.records} records"
    for r in page.frame.itertuples()
}
# The batch the officer opened (or a ?batch= link named) stays open when it leaves the list
# (decided, by them or anyone): never another batch in its place.
opened = st.session_state.get(OPENED_KEY)
linked_batch = st.query_params.get("batch")
missing: str | None = None
from_link = linked_batch is not None and OPENED_KEY not in st.session_state
if linked_batch is not None and from_link:
    opened = int(linked_batch) if linked_batch.isdigit() else linked_batch
if opened is not None and opened not in labels:
    try:
        if not isinstance(opened, int):
            raise NotFound(f"no deletion batch with id {opened}")
        with context.session(policy) as s:
            kept = get_batch(s, opened)
        if bucket in (ALL, kept.bucket):
            size = context.batch_records(url, opened, 1, 0).total
            labels = {opened: f"#{kept.id} · {kept.bucket} · {size} records", **labels}
        elif from_link:  # a link naming a batch and another bucket: said, not guessed
            missing = f"batch {kept.id} is in bucket {kept.bucket}, not {bucket}"
            opened = None
        else:  # the officer chose another bucket since
            opened = None
    except ComplianceError as exc:
        missing = widgets.error_text(exc)
        opened = None
if missing:
    st.warning(widgets.plain(f"Cannot open the batch asked for: {missing}. Nothing is selected."))
    st.session_state.pop("open_batch", None)
elif opened is not None:
    st.session_state["open_batch"] = opened
if not labels:
    st.session_state.pop(OPENED_KEY, None)
    st.stop()


def remember_choice() -> None:
    st.session_state[OPENED_KEY] = st.session_state["open_batch"]


batch_id: int | None = st.selectbox(
    "Open a batch",
    list(labels),
    format_func=lambda b: labels[b],
    key="open_batch",
    index=None if missing else 0,
    placeholder="Choose a batch",
    on_change=remember_choice,
)
if batch_id is None:  # nothing asked for is there, or an empty list
    st.session_state.pop(OPENED_KEY, None)
    st.stop()
st.session_state[OPENED_KEY] = batch_id
try:
    with context.session(policy) as s:
        batch = get_batch(s, int(batch_id))
except ComplianceError as exc:
    widgets.show_error(exc)
    st.stop()

st.subheader(f"Batch {batch.id} · {batch.bucket}")
kind = policy.bucket_subject(batch.bucket)
if policy.multiple_subject_types and kind is not None:  # which people: customers, employees...
    st.caption(f"Data subjects: {kind} ({policy.subject_types[kind].table})")
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
    target = None
    st.markdown("**Impact preview** — what accepting this batch would do (nothing is changed):")
    try:
        impact, target = context.batch_preview(policy, batch.id)
    except ComplianceError as exc:
        widgets.show_error(exc)
    else:
        widgets.table(impact, widths={"legal_basis": "large"})
        # The dialog decides what this preview showed, or nothing (the library compares).
        seen = {"batch_id": batch.id, "version": target.version, "label": target.label}
        accept, reject = st.columns(2)
        if accept.button("Accept batch…", type="primary", key="accept"):
            widgets.ask_confirmation("accept", **seen)
        if reject.button("Reject batch…", key="reject"):
            widgets.ask_confirmation("reject", **seen)

records = widgets.load_page(
    f"records_page_{batch.id}",
    RECORDS_PAGE_SIZE,
    lambda n, o: context.batch_records(url, batch.id, n, o),
)
st.markdown("**Records** — and why each is due, as the application database says now")
shown_records = records.frame.drop(columns=["profile_id", "created_at", "state"])
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
        # A rule described in the policy is its own header: said once, not "X: X".
        st.caption(
            "; ".join(
                c.header if c.meaning == c.header else f"{c.header}: {c.meaning}"
                for c in proof.columns
                if c.kind != "value"
            )
            + ". Read live, never stored."
        )
    elif batch.bucket not in policy.buckets:
        st.caption("The data subject asked for erasure (a DSAR request); no rule to show.")
# The free-text note is read whole below the table: no column width fits every note.
widgets.table(shown_records.drop(columns=["note"]), headers=evidence_headers, widths={"flags": 215})
widgets.pager(f"records_page_{batch.id}", records)
noted = records.frame[records.frame["note"].notna()]
if not noted.empty:
    st.markdown("**Notes** — why these records are kept:")
    for r in noted.itertuples():
        widgets.show_text(f"Record {r.record_id} (subject {r.subject_id})", str(r.note))


SUBJECT_OF = dict(zip(records.frame["record_id"], records.frame["subject_id"], strict=True))


def record_label(record_id: int) -> str:
    subject = SUBJECT_OF.get(record_id)
    return f"record {record_id} (subject {subject})" if subject is not None else str(record_id)


if batch.reviewed_status == BatchStatus.PENDING and not records.frame.empty:
    # Every record not yet excluded: keeping them all is its own action, asked first.
    waiting = target.records - target.excluded if target is not None else None
    if waiting and target is not None:
        everyone: dict[str, Any] = {
            "batch_id": batch.id,
            "version": target.version,
            "label": target.label,
        }
        if st.button(f"Exclude all {waiting} record(s) still awaiting the decision…"):
            widgets.ask_confirmation("exclude_all", waiting=waiting, **everyone)
    excluded = records.frame.loc[records.frame["state"] == RecordState.EXCLUDED, "record_id"]
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
            select_all=False,  # one click must not keep the whole batch: see "Exclude all"
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
            elif waiting is not None and target is not None and len(set(chosen)) >= waiting:
                # Every record awaiting the decision: asked first, as "Exclude all" is.
                widgets.ask_confirmation(
                    "exclude_all", waiting=waiting, batch_id=batch.id, version=target.version,
                    label=target.label, reason=note, hold=hold,
                )  # fmt: skip
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

asked = widgets.pending_confirmation("exclude_all")
if asked:
    everything_kept: dict[str, Any] = asked
    holding = bool(everything_kept.get("hold"))  # asked for in the exclusion form

    def exclude_everything(note: str | None) -> str:
        st.session_state[FORM_NONCE] = st.session_state.get(FORM_NONCE, 0) + 1
        with context.session(policy) as s:
            done = exclude_all_records(
                s, everything_kept["batch_id"], note or "", actor=actor, policy=policy,
                seen_version=everything_kept["version"], hold=holding,
            )  # fmt: skip
        placed = f" Placed legal hold(s) {', '.join(map(str, done.holds))}." if done.holds else ""
        return (
            f"Excluded all {done.excluded} record(s) still awaiting the decision from batch "
            f"{everything_kept['batch_id']}: accepting it now erases nothing.{placed}"
        )

    widgets.confirm_dialog(
        f"Exclude every record of batch {everything_kept['batch_id']}?",
        f"You keep all {everything_kept['waiting']} record(s) of "
        f"{widgets.plain(everything_kept['label'])} that still await the decision: nothing in "
        "this batch would be erased. If none of them should be erased, rejecting the batch "
        "says so more plainly. Say why they are kept, for the audit trail."
        + (
            " Each of their subjects also gets a legal hold, the note its reason."
            if holding
            else ""
        ),
        confirm_label=f"Exclude all {everything_kept['waiting']} record(s)",
        on_confirm=exclude_everything,
        reason_label="Note (why every record is kept)",
        reason_required="Excluding every record needs a note saying why.",
    )

bulk = widgets.pending_confirmation("bulk_accept") or widgets.pending_confirmation("bulk_reject")
if bulk:
    bulk_decision = "accept" if bulk["action"] == "bulk_accept" else "reject"
    targets: list[int] = bulk["batch_ids"]
    seen_versions: dict[int, str] = bulk["versions"]

    def decide_all(reason: str | None) -> str:
        with context.session(policy) as s:
            plan = plan_bulk_review(s, bulk_decision, batch_ids=targets)
            result = review_batches(
                s, plan, reviewer=actor, reason=reason, execute=True, policy=policy,
                seen_versions=seen_versions,
            )  # fmt: skip
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
            "This decides "
            + "; ".join(widgets.plain(label) for label in bulk["labels"])
            + ".\n\nEach batch is decided and audited on its own; one decided by someone else "
            "meanwhile is skipped and reported; if any changed since this preview, none is. "
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

decision = widgets.pending_confirmation("accept") or widgets.pending_confirmation("reject")
if decision:
    pending: dict[str, Any] = decision
    target_id, action, label = pending["batch_id"], pending["action"], pending["label"]

    def decide(reason: str | None) -> str:
        # Kept open afterwards, also when someone else decided first: the page says who.
        st.session_state[OPENED_KEY] = target_id
        with context.session(policy) as s:
            result = review_batch(
                s, target_id, action, reviewer=actor, reason=reason, policy=policy,
                seen_version=pending["version"], execute=True,
            )  # fmt: skip
        return (
            f"Batch {target_id} {result.decision}: {result.accepted} to erase, "
            f"{result.excluded} excluded, {result.rejected} rejected."
        )

    if pending["action"] == "accept":
        widgets.confirm_dialog(
            f"Accept batch {target_id}?",
            f"You accept {widgets.plain(label)}, as its impact preview showed it. Its records "
            "not excluded are erased by the next `apply-deletions` run. This cannot be undone.",
            confirm_label="Accept and schedule erasure",
            on_confirm=decide,
        )
    else:
        widgets.confirm_dialog(
            f"Reject batch {target_id}?",
            f"You reject {widgets.plain(label)}: every record in it is kept. Say why, for the "
            "audit trail.",
            confirm_label="Reject batch",
            on_confirm=decide,
            reason_label="Reason",
            reason_required="Rejecting a batch needs a reason.",
        )
