"""DSAR requests: support logs and follows a customer's request, officers approve or reject."""

from __future__ import annotations

import streamlit as st

from compliance.dsar import requests as dsar
from compliance.dsar.deadlines import effective_due_at
from compliance.errors import ComplianceError
from compliance.reports.review_queue import DSAR_ACTION_COLUMNS
from compliance.roles import COMPLIANCE_OFFICER, SUPPORT
from dashboard import context, widgets

PAGE_SIZE = 50
EXPORT_KEY = "dsar_export"

person = widgets.require_role(COMPLIANCE_OFFICER, SUPPORT)
policy = context.policy()
url = policy.database_url
officer = person.has(COMPLIANCE_OFFICER)
st.title("DSAR requests")
widgets.show_flash()

st.subheader("Log a new request")
with st.form("submit_dsar", clear_on_submit=True):
    kind = st.radio("Kind", dsar.KINDS, horizontal=True)
    by_id, by_email = st.columns(2)
    subject_id = by_id.text_input("Subject id")
    email = by_email.text_input("or the subject's email")
    check = st.text_area("How the requester's identity was checked")
    if st.form_submit_button("Log request", type="primary"):

        def log() -> str:
            with context.session(policy) as s:
                made = dsar.submit(
                    s,
                    policy,
                    context.engine(policy.app_database_url),
                    kind=kind,
                    subject_id=subject_id.strip() or None,
                    email=email.strip() or None,
                    requested_by=person,
                    identity_check=check,
                )
            r = made.request
            if not made.created:
                return f"An open {r.kind} request for this subject exists: {r.reference}."
            return f"Logged {r.reference}, due {effective_due_at(r):%Y-%m-%d}."

        widgets.run_action(log)


left, right = st.columns(2)
status = left.selectbox("Status", [widgets.ALL, *dsar.STATUSES], key="dsar_status")
kind_filter = right.selectbox("Kind", [widgets.ALL, *dsar.KINDS], key="dsar_kind")
number = int(st.session_state.get("dsar_page", 1))
frame, more = context.dsar_requests(
    url,
    widgets.unless_all(status),
    widgets.unless_all(kind_filter),
    PAGE_SIZE,
    (number - 1) * PAGE_SIZE,
)
overdue = int(frame["overdue"].sum()) if not frame.empty else 0
if overdue:
    st.error(f"{overdue} request(s) on this page are overdue.")
widgets.table(
    frame.drop(columns=DSAR_ACTION_COLUMNS).assign(
        overdue=frame["overdue"].map({True: "overdue", False: ""})
    )
)
if number > 1 or more:
    st.number_input("Page", min_value=1, max_value=number + int(more), step=1, key="dsar_page")

# Which buttons show comes from the library's read model (next_actions), not from statuses.
pending = frame.loc[frame["can_review"], "reference"].tolist()
if officer and pending:
    st.subheader("Review")
    widgets.preset_from_query("dsar_review", "reference", pending)  # links from Slack alerts
    reference = st.selectbox("Pending request", pending, key="dsar_review")
    approve, reject = st.columns(2)
    if approve.button("Approve…", type="primary", key="dsar_approve"):
        widgets.ask_confirmation("dsar_approve", reference=reference)
    if reject.button("Reject…", key="dsar_reject"):
        widgets.ask_confirmation("dsar_reject", reference=reference)
    with st.expander("Decide several requests at once"):
        every = st.checkbox(f"All {len(pending)} pending request(s) on this page", key="dsar_all")
        several = pending if every else st.multiselect("Pending requests", pending, key="dsar_bulk")
        many_approve, many_reject = st.columns(2)
        if many_approve.button("Approve these…", key="dsar_bulk_approve", disabled=not several):
            widgets.ask_confirmation("dsar_bulk_approve", references=several)
        if many_reject.button("Reject these…", key="dsar_bulk_reject", disabled=not several):
            widgets.ask_confirmation("dsar_bulk_reject", references=several)

open_refs = frame.loc[frame["can_extend"] | frame["can_retry"], "reference"].tolist()
if officer and open_refs:
    st.subheader("Deadline and retries")
    reference = st.selectbox("Open request", open_refs, key="dsar_open_ref")
    chosen = frame.loc[frame["reference"] == reference].iloc[0]
    if chosen["can_extend"]:
        with st.form("extend_dsar", clear_on_submit=True):
            st.caption(
                f"Due {chosen['due']:%Y-%m-%d}. GDPR Art. 12(3) allows at most two more months "
                "for complex or numerous requests, and the data subject must be told why."
            )
            months = st.radio(
                "Extend by", [1, 2], format_func=lambda m: f"{m} month(s)", horizontal=True
            )
            reason = st.text_input("Why the extension is needed")
            if st.form_submit_button("Extend deadline"):

                def extend() -> str:
                    with context.session(policy) as s:
                        r = dsar.extend_dsar(
                            s, reference, months=months, reason=reason, actor=person
                        )
                    return f"{r.reference} now due {effective_due_at(r):%Y-%m-%d}."

                widgets.run_action(extend)
    if chosen["can_retry"] and st.button("Retry the failed request", key="dsar_retry"):

        def retry() -> str:
            with context.session(policy) as s:
                r = dsar.retry_dsar(s, reference, actor=person)
            return f"{r.reference} is back in the queue ({r.status})."

        widgets.run_action(retry)

finished = frame.loc[frame["can_download"], "reference"].tolist()
if finished:
    st.subheader("Finished exports")
    reference = st.selectbox("Export", finished, key="dsar_export_ref")
    if st.button("Prepare download", key="dsar_prepare"):
        try:
            with context.session(policy) as s:
                path = dsar.open_export_for_download(s, reference, actor=person)
            st.session_state[EXPORT_KEY] = (reference, path.name, path.read_bytes())
        except ComplianceError as exc:
            st.error(widgets.plain(exc))
    ready = st.session_state.get(EXPORT_KEY)
    if ready and ready[0] == reference:
        st.download_button(
            f"Download {ready[1]}", ready[2], file_name=ready[1], mime="application/zip"
        )

asked = widgets.pending_confirmation("dsar_approve") or widgets.pending_confirmation("dsar_reject")
if asked:
    target = asked["reference"]
    decision = "approve" if asked["action"] == "dsar_approve" else "reject"

    def review(reason: str | None) -> str:
        with context.session(policy) as s:
            r = dsar.review_dsar(
                s,
                target,
                decision,
                reviewer=person,
                four_eyes=policy.review.four_eyes,
                reason=reason,
            )
        return f"{r.reference} {r.status}."

    widgets.confirm_dialog(
        f"{decision.capitalize()} {target}?",
        "Approved requests are processed by the next `process-dsar-requests` run."
        if decision == "approve"
        else "Nothing is exported or erased. Say why, for the audit trail.",
        confirm_label=decision.capitalize(),
        on_confirm=review,
        reason_label="Reason" if decision == "reject" else None,
        reason_required="Rejecting a request needs a reason." if decision == "reject" else None,
    )

several_asked = widgets.pending_confirmation("dsar_bulk_approve") or widgets.pending_confirmation(
    "dsar_bulk_reject"
)
if several_asked:
    references: list[str] = several_asked["references"]
    verdict = "approve" if several_asked["action"] == "dsar_bulk_approve" else "reject"

    def review_several(reason: str | None) -> str:
        with context.session(policy) as s:
            result = dsar.review_dsars(
                s,
                references,
                verdict,
                reviewer=person,
                four_eyes=policy.review.four_eyes,
                reason=reason,
                execute=True,
            )
        message = f"{len(result.decided)} request(s) {verdict}d: {', '.join(result.decided)}."
        for reference, why in result.skipped:
            message += f" Skipped {reference}: {why}."
        return message

    widgets.confirm_dialog(
        f"{verdict.capitalize()} {len(references)} request(s)?",
        "Each request is decided and audited on its own; one decided by someone else "
        "meanwhile is skipped and reported. "
        + (
            "Approved requests are processed by the next `process-dsar-requests` run."
            if verdict == "approve"
            else "Nothing is exported or erased. Say why, for the audit trail."
        ),
        confirm_label=f"{verdict.capitalize()} {len(references)} request(s)",
        on_confirm=review_several,
        reason_label="Reason" if verdict == "reject" else None,
        reason_required="Rejecting requests needs a reason." if verdict == "reject" else None,
    )
