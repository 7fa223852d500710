"""DSAR requests: log one, see what needs action first, open one request to act on it."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from compliance.dsar import decisions, desk, downloads, notices, rights
from compliance.dsar import requests as dsar
from compliance.dsar.deadlines import effective_due_at
from compliance.dsar.delivery import default_download_url, deliver_export
from compliance.dsar.objections import SCOPES
from compliance.dsar.rectification import Correction, parse_correction, plan_rectification
from compliance.errors import ComplianceError
from compliance.free_text import MAX_FREE_TEXT
from compliance.policy.jurisdictions import MAX_PERIOD_DAYS
from compliance.reports.review_queue import DSAR_ACTION_COLUMNS
from compliance.roles import COMPLIANCE_OFFICER, SUPPORT
from compliance.store.states import DsarKind, NoticeStatus
from dashboard import bulk_review, context, export_jobs, widgets

PAGE_SIZE = 50
EXPORT_KEY = "dsar_export"
OPEN_KEY = "dsar_open"
# The log form's inputs, kept after a refused submit and cleared once the request is logged.
LOG_KEYS = (
    "log_kind", "log_subject_type", "log_subject_id", "log_email", "log_jurisdiction", "log_method",
    "log_identity_note", "log_scope", "log_corrections", "log_correction_words",
)  # fmt: skip

person = widgets.require_role(COMPLIANCE_OFFICER, SUPPORT)
policy = context.policy()
url = policy.database_url

# Approving an erasure request is its review: no deletion batch follows.
APPROVING_ERASURE = (
    "Approving an erasure request accepts its erasure: the next `apply-deletions` run "
    "carries it out (a legal hold still wins), with no batch to review."
)


def erasure_versions(references: list[str]) -> dict[str, str]:
    """Each erasure request's version as its preview shows it now: the approval carries it,
    and the library refuses it once the request's target changed ([dsar] erasure_review)."""
    if not policy.dsar.erasure_review:
        return {}
    versions: dict[str, str] = {}
    with context.session(policy) as s:
        for request in dsar.requests_by_reference(s, references):
            if request.kind == DsarKind.ERASURE:
                versions[request.reference] = decisions.erasure_target(
                    s, policy, request.reference
                ).version
    return versions


def erasure_preview(references: tuple[str, ...]) -> Callable[[], None] | None:
    """The impact preview of approving these erasure requests ([dsar] erasure_review)."""
    if not policy.dsar.erasure_review:
        return None

    def show() -> None:
        impact = context.request_impact(policy, references)
        if impact.empty:
            return  # no erasure request among them
        st.markdown("**What approving erases** (the plan accepted with the approval):")
        widgets.table(impact, widths={"legal_basis": "large"})

    return show


def asked_corrections(lines: str, in_words: str) -> list[Correction]:
    """The form's corrections: a ``table.column = value`` per line, then the words."""
    found = [parse_correction(line) for line in lines.splitlines() if line.strip()]
    return found + ([Correction(in_words)] if in_words.strip() else [])


def rectification_preview(reference: str) -> Callable[[], None]:
    """What approving a rectification changes: the UPDATE per table process-dsar-requests runs."""

    def show() -> None:
        with context.session(policy) as s:
            plan = plan_rectification(s, context.datamap(policy), dsar.get_dsar(s, reference))
        st.markdown("**What approving changes** (one UPDATE per table, as shown):")
        widgets.table(
            pd.DataFrame(
                [
                    {"table": c.table, "system": c.system, "rows": c.rows}
                    | {"set": "; ".join(f"{k} = {v}" for k, v in sorted(c.values.items()))}
                    for c in plan.changes
                ],
                columns=["table", "system", "rows", "set"],
            ),
            widths={"set": "large"},
        )
        for words in plan.in_words:
            st.caption("In words, for a person:")
            st.text(words)

    return show


st.title("DSAR requests")
widgets.show_flash()

counters = context.dsar_counters(url)
c_open, c_overdue, c_week = st.columns(3)
c_open.metric("Open", counters.open)
c_overdue.metric("Overdue", counters.overdue)
c_week.metric("Due this week", counters.due_this_week)
if counters.overdue:
    st.warning(f"{counters.overdue} open request(s) are overdue; they are listed first.")

st.subheader("Log a new request")
# Outside the form, so choosing a kind shows the inputs that kind needs.
kind = st.radio("Kind", dsar.KINDS, horizontal=True, key="log_kind")
with st.form("submit_dsar"):
    scope = None
    if kind == DsarKind.OBJECTION:
        scope = st.selectbox(
            "What the subject objects to",
            SCOPES,
            format_func=lambda s: s.replace("_", " "),
            key="log_scope",
        )
        st.caption("An objection to direct marketing cannot be refused (GDPR Art. 21(3)).")
    corrections, in_words = "", ""
    if kind == DsarKind.RECTIFICATION:
        corrections = st.text_area(
            "Corrections, one per line: table.column = new value",
            placeholder="users.full_name = Ada Lovelace",
            max_chars=MAX_FREE_TEXT,
            key="log_corrections",
        )
        in_words = st.text_area(
            "Anything else to correct, in words (a person carries it out)",
            max_chars=MAX_FREE_TEXT,
            key="log_correction_words",
        )
    by_id, by_email = st.columns(2)
    subject_id = by_id.text_input("Subject id", key="log_subject_id")
    email = by_email.text_input("or the subject's email", key="log_email")
    subject_type = widgets.subject_type_picker(policy, "log_subject_type", any_label="Any kind")
    method = st.selectbox(
        "How the requester's identity was checked",
        policy.dsar.identity_methods,
        index=None,
        format_func=lambda m: m.replace("_", " "),
        placeholder="Choose a method",
        key="log_method",
    )
    check = st.text_area(
        "Identity check note (who checked what)", max_chars=MAX_FREE_TEXT, key="log_identity_note"
    )
    automatic = f"By the subject's country, else {policy.dsar.default_jurisdiction}"
    jurisdiction = st.selectbox(
        "Jurisdiction (the law that sets the deadline)",
        [None, *policy.jurisdictions],
        format_func=lambda name: automatic if name is None else name,
        key="log_jurisdiction",
    )
    if st.form_submit_button("Log request", type="primary"):

        def log() -> str:
            with context.session(policy) as s:
                each = dsar.submit_each_kind(
                    s,
                    policy,
                    context.engine(policy.app_database_url),
                    kind=kind,
                    subject_id=subject_id.strip() or None,
                    email=email.strip() or None,
                    subject_type=subject_type,
                    jurisdiction=jurisdiction,
                    requested_by=person,
                    identity_check=check,
                    identity_method=method,
                    require_identity=True,
                    channel="dashboard",
                    scope=scope,
                    corrections=asked_corrections(corrections, in_words),
                    execute=True,
                )
            st.session_state[OPEN_KEY] = each[0].request.reference
            widgets.forget_inputs(*LOG_KEYS)
            return " ".join(dsar.outcome_line(made) for made in each)

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
references = frame["reference"].tolist()
widgets.preset_from_link(OPEN_KEY, "reference", dsar.REFERENCE_FORM)  # Slack alerts


def _open_selected_row() -> None:
    rows = st.session_state["dsar_table"].selection.rows
    if rows and rows[0] < len(references):
        st.session_state[OPEN_KEY] = references[rows[0]]


hidden = DSAR_ACTION_COLUMNS + ([] if policy.multiple_subject_types else ["subject_type"])
table = frame.drop(columns=hidden).assign(
    days_left=frame["days_left"].map(widgets.days_text, na_action="ignore").fillna(""),
    overdue=frame["overdue"].map({True: "overdue", False: ""}),
)
st.caption("Select a row to open the request.")
st.dataframe(
    widgets.readable(table),
    hide_index=True,
    width="stretch",
    # "339 day(s) overdue" whole, not clipped: sized to the longest text shown.
    column_config=widgets.labels(
        table.columns, widths={"days_left": widgets.text_width(table["days_left"], least=116)}
    ),
    # Days left already says "N day(s) overdue": no column repeats it.
    column_order=[c for c in table.columns if c not in ("requested_by", "reviewed_by", "overdue")],
    on_select=_open_selected_row,
    selection_mode="single-row",
    key="dsar_table",
)

pending = frame.loc[frame["can_review"].astype(bool), "reference"].tolist()
if person.has(COMPLIANCE_OFFICER) and pending:
    with st.expander("Decide several requests at once"):
        with context.session(policy) as s:
            candidates = desk.review_candidates(s, policy, pending, viewer=person.email)
        # Four eyes: the viewer's own requests are shown, greyed out of approval.
        approvable = [c.reference for c in candidates if c.may_approve]
        rejectable = [c.reference for c in candidates if c.may_reject]
        bulk_review.show_candidates(candidates)
        every = st.checkbox(f"All {len(pending)} pending request(s) on this page", key="dsar_all")
        several = pending if every else st.multiselect("Pending requests", pending, key="dsar_bulk")
        bulk_review.say_what_is_skipped(several, approvable, rejectable)
        many_approve, many_reject = st.columns(2)
        to_approve = [r for r in several if r in approvable]
        to_reject = [r for r in several if r in rejectable]
        if many_approve.button("Approve these…", key="dsar_bulk_approve", disabled=not to_approve):
            widgets.ask_confirmation(
                "dsar_bulk_approve", references=to_approve, versions=erasure_versions(to_approve)
            )
        if many_reject.button("Reject these…", key="dsar_bulk_reject", disabled=not to_reject):
            widgets.ask_confirmation("dsar_bulk_reject", references=to_reject)

several_asked = widgets.pending_confirmation("dsar_bulk_approve") or widgets.pending_confirmation(
    "dsar_bulk_reject"
)
if several_asked:
    chosen_refs: list[str] = several_asked["references"]
    seen_versions: dict[str, str] = several_asked.get("versions") or {}
    verdict = "approve" if several_asked["action"] == "dsar_bulk_approve" else "reject"

    def review_several(reason: str | None) -> str:
        with context.session(policy) as s:
            result = decisions.review_dsars(
                s,
                chosen_refs,
                verdict,
                reviewer=person,
                four_eyes=policy.review.four_eyes,
                reason=reason,
                policy=policy,
                seen_versions=seen_versions,
                execute=True,
            )
        past = {"approve": "approved", "reject": "rejected"}[verdict]
        message = f"{len(result.decided)} request(s) {past}: {', '.join(result.decided)}."
        for reference, why in result.skipped:
            message += f" Skipped {reference}: {why}."
        return message

    widgets.confirm_dialog(
        f"{verdict.capitalize()} {len(chosen_refs)} request(s)?",
        f"{', '.join(chosen_refs)}. Each is decided and audited on its own; one decided by "
        "someone else meanwhile is skipped and reported. "
        + (
            "Approved requests are processed by the next `process-dsar-requests` run; "
            + APPROVING_ERASURE
            if verdict == "approve"
            else "Nothing is exported or erased. Say why, for the audit trail."
        ),
        confirm_label=f"{verdict.capitalize()} {len(chosen_refs)} request(s)",
        on_confirm=review_several,
        reason_label="Reason" if verdict == "reject" else None,
        reason_required="Rejecting requests needs a reason." if verdict == "reject" else None,
        details=erasure_preview(tuple(chosen_refs)) if verdict == "approve" else None,
    )
if number > 1 or more:
    st.number_input("Page", min_value=1, max_value=number + int(more), step=1, key="dsar_page")

chosen = st.session_state.get(OPEN_KEY)
options = references if chosen in references or chosen is None else [chosen, *references]
picked = st.selectbox(
    "Open request", options, index=None, key=OPEN_KEY, placeholder="Choose a request"
)
if picked is None:
    st.stop()
reference = str(picked)

try:
    with context.session(policy) as s:
        detail = desk.request_detail(s, policy, reference, roles=person.roles, viewer=person.email)
except ComplianceError as exc:
    widgets.show_error(exc)
    st.stop()

# ---------------------------------------------------------------- one request, one view

st.header(detail.reference)
widgets.status_badge(detail.status)
facts, deadline = st.columns(2)
with facts:
    st.markdown(f"**Kind:** {detail.kind}")
    if detail.scope:
        st.markdown(f"**Objects to:** {detail.scope.replace('_', ' ')}")
    st.markdown("**Subject:**")
    st.text(f"{detail.subject_id} · {detail.subject_email or 'no email on file'}")
    st.markdown(
        f"**Logged:** {detail.requested_at:%Y-%m-%d %H:%M} UTC by "
        f"{widgets.plain(detail.requested_by)} ({detail.channel or 'unknown channel'})"
    )
with deadline:
    st.markdown(f"**Due:** {detail.due_at:%Y-%m-%d} (UTC) · {detail.jurisdiction}")
    if detail.days_left is not None:
        text = widgets.days_text(detail.days_left)
        (st.warning if detail.overdue else st.info)(text)
    if detail.extension_reason:
        st.markdown("**Extended because:**")
        st.text(detail.extension_reason)
if detail.corrections:
    st.markdown("**Corrections asked:**")
    widgets.table(
        pd.DataFrame(
            [
                {
                    "column": f"{c.table}.{c.column}" if c.column else "(in words)",
                    "new value": c.value,
                }
                for c in detail.corrections
            ]
        ),
        widths={"new value": "large"},
    )
st.markdown("**Identity check:**")
if detail.identity == desk.NOT_RECORDED:
    st.warning("Identity check not recorded.")
else:
    st.text(detail.identity)
if detail.reviewed_by:
    st.markdown(f"**Reviewed by:** {widgets.plain(detail.reviewed_by)}")
    if detail.reviewed_reason:
        st.text(detail.reviewed_reason)
if detail.last_error:
    st.error("Last error:")
    st.text(detail.last_error)
if detail.waiting_for:
    st.info(detail.waiting_for.capitalize() + ".")
actions = set(detail.actions)

if "approve" in actions or "reject" in actions:
    approve, reject = st.columns(2)
    # Offered only to those the library lets approve (four eyes: not the request's author).
    if "approve" in actions and approve.button("Approve…", type="primary", key="dsar_approve"):
        widgets.ask_confirmation(
            "dsar_approve", reference=reference, versions=erasure_versions([reference])
        )
    # Not offered for an objection to direct marketing: it is never refused (Art. 21(3)).
    if "reject" in actions and reject.button("Reject…", key="dsar_reject"):
        widgets.ask_confirmation("dsar_reject", reference=reference)

if "export" in actions and st.button("Export now", type="primary", key="dsar_export_now"):

    def export_now() -> str:
        export_jobs.start(policy, reference, person)
        return f"Building the export of {reference}…"

    widgets.run_action(export_now)

job = export_jobs.job_for(reference)
if job is not None:

    @st.fragment(run_every=1.0)
    def export_progress() -> None:
        current = export_jobs.job_for(reference)
        if current is None:
            return
        if not current.finished:
            label = f"Building the export: {current.done} of {current.total or '?'} tables"
            st.progress(
                current.fraction, text=label + (f" ({current.table})" if current.table else "")
            )
            return
        export_jobs.forget(reference)
        context.clear_caches()
        if current.error:
            widgets.flash("error", f"The export of {reference} failed: {current.error}")
        else:
            widgets.flash("success", f"The export of {reference} is ready.")
        st.rerun(scope="app")

    export_progress()

if "send" in actions:
    st.caption(
        f"The export is kept until {detail.export_expires_at:%Y-%m-%d}; after that it can no "
        "longer be sent."
    )
    send, download = st.columns(2)
    if send.button("Send to subject", type="primary", key="dsar_send"):

        def send_link() -> str:
            with context.session(policy) as s:
                deliver_export(
                    s,
                    policy,
                    reference,
                    actor=person,
                    download_url=default_download_url(),
                    execute=True,
                )
            return f"Emailed {reference}'s one-time link and, separately, its code to the subject."

        widgets.run_action(send_link)
    if download.button("Prepare download", key="dsar_prepare"):
        try:
            with context.session(policy) as s:
                handed = downloads.open_export_for_download(s, policy, reference, actor=person)
            st.session_state[EXPORT_KEY] = handed
        except ComplianceError as exc:
            widgets.show_error(exc)
    ready = st.session_state.get(EXPORT_KEY)
    if ready and ready.reference == reference and ready.content is not None:
        st.download_button(
            f"Download {ready.filename}", ready.content, file_name=ready.filename,
            mime="application/zip",
        )  # fmt: skip
    elif ready and ready.reference == reference and ready.url:
        # Larger than [exports] max_download_mb: the bucket serves it, for 60 seconds.
        st.link_button(f"Download {ready.filename}", ready.url)
        st.caption("The link works for 60 seconds; press Prepare download again after that.")

if "extend" in actions:
    law = policy.jurisdictions.get(detail.jurisdiction)
    extend_keys = (f"extend_by_{reference}", f"extend_unit_{reference}")
    with st.form("extend_dsar"):
        st.caption(
            f"Due {detail.due_at:%Y-%m-%d}. Under {detail.jurisdiction} it may be extended to "
            f"{detail.latest_due_at:%Y-%m-%d} at the latest, for complex or numerous requests; "
            "the data subject must be told why."
        )
        count_column, unit_column = st.columns(2)
        count = count_column.number_input(
            "Extend by", min_value=1, max_value=MAX_PERIOD_DAYS, step=1, key=extend_keys[0]
        )
        unit = unit_column.radio(
            "Unit",
            ["months", "days"],
            index=1 if law is not None and law.extension_days else 0,
            horizontal=True,
            key=extend_keys[1],
        )
        reason = st.text_input(
            "Why the extension is needed", max_chars=MAX_FREE_TEXT, key=f"extend_reason_{reference}"
        )
        if st.form_submit_button("Extend deadline"):

            def extend() -> str:
                with context.session(policy) as s:
                    r = decisions.extend_dsar(
                        s, reference, policy=policy, months=int(count) if unit == "months" else 0,
                        days=int(count) if unit == "days" else 0, reason=reason, actor=person,
                        execute=True,
                    )  # fmt: skip
                widgets.forget_inputs(*extend_keys, f"extend_reason_{reference}")
                return f"{r.reference} now due {effective_due_at(r):%Y-%m-%d}."

            widgets.run_action(extend)

if "retry" in actions and st.button("Retry the failed request", key="dsar_retry"):

    def retry() -> str:
        with context.session(policy) as s:
            r = decisions.retry_dsar(s, reference, actor=person, execute=True)
        return f"{r.reference} is back in the queue ({r.status})."

    widgets.run_action(retry)

if detail.restriction is not None:
    start, end = detail.restriction.start, detail.restriction.end
    st.markdown(
        f"**Processing restricted** since {start:%Y-%m-%d %H:%M} UTC"
        + (f", lifted {end:%Y-%m-%d %H:%M} UTC." if end else ": a hold on the subject's data.")
        if start
        else "**Processing restricted.**"
    )
if "lift" in actions and st.button("Lift the restriction…", key="dsar_lift"):
    widgets.ask_confirmation("dsar_lift", reference=reference)
lift_asked = widgets.pending_confirmation("dsar_lift")
if lift_asked:
    lifting = lift_asked["reference"]

    def lift(reason: str | None) -> str:
        with context.session(policy) as s:
            plan = rights.plan_lift_restriction(s, lifting, reason=reason, by=person)
            rights.lift_restriction(s, policy, plan)
        return f"The subject was told, and the restriction of {lifting} is lifted."

    widgets.confirm_dialog(
        f"Lift the restriction of {lifting}?",
        "The subject is emailed this reason first (GDPR Art. 18(3)); the restriction ends only "
        "once that email went out. From then on their data may be processed and erased again.",
        confirm_label="Tell the subject and lift",
        on_confirm=lift,
        reason_label="Reason (the subject reads it)",
        reason_required="Lifting a restriction needs a reason.",
    )

if detail.systems:
    st.subheader("Systems")
    st.caption(
        "The request is completed only when every system it reaches says done; a manual "
        "step waits on the System tasks page."
    )
    widgets.table(
        pd.DataFrame(
            [
                {
                    "system": t.system,
                    "task": t.action.replace("_", " "),
                    "kind": t.kind,
                    "status": t.status,
                    "attempts": t.attempts,
                    "done_at": t.done_at,
                    "done_by": t.done_by or "",
                    "error": t.last_error or "",
                }
                for t in detail.systems
            ]
        )
    )

st.subheader("Timeline")
timeline = pd.DataFrame(
    [{"occurred_at": e.occurred_at, "what": e.label, "by": e.actor} for e in detail.timeline],
    columns=["occurred_at", "what", "by"],
)
st.dataframe(
    timeline, hide_index=True, width="stretch", column_config=widgets.labels(timeline.columns)
)

st.subheader("Notices to the subject")
if detail.notices:
    sent = pd.DataFrame(
        [
            {
                "notice": n.kind,
                "status": n.status,
                "created_at": n.created_at,
                "sent_at": n.sent_at,
                "attempts": n.attempts,
                "error": n.last_error or "",
            }
            for n in detail.notices
        ]
    )
    widgets.table(sent)
for failed in [n for n in detail.notices if n.status == NoticeStatus.FAILED]:
    if st.button(f"Retry the {failed.kind} notice", key=f"notice_retry_{failed.id}"):

        def retry_notice(notice_id: int = failed.id) -> str:
            with context.session(policy) as s:
                result = notices.retry_notice(s, policy, notice_id, actor=person)
            if result.status == NoticeStatus.FAILED:
                raise ComplianceError(f"The {result.kind} notice failed again: {result.error}")
            return f"The {result.kind} notice was sent."

        widgets.run_action(retry_notice)
if "notice" in actions:
    with context.session(policy) as s:
        request_row = dsar.get_dsar(s, reference)
    kinds = notices.notice_kinds_for(request_row)
    done = {n.kind for n in detail.notices if n.status == NoticeStatus.SENT}
    unsent = [k for k in kinds if k not in done]
    kind_choice = st.selectbox(
        "Notice",
        kinds,
        index=kinds.index(unsent[-1]) if unsent else 0,
        key=f"notice_kind_{reference}_{len(kinds)}",  # a new state suggests its notice
    )
    reason_text = None
    if kind_choice in ("extension", "refusal"):
        reason_text = st.text_area(
            "Reason, as the subject will read it",
            value=notices.default_reason(request_row, kind_choice) or "",
            key=f"notice_reason_{reference}_{kind_choice}",
            max_chars=MAX_FREE_TEXT,
        )
    try:
        preview = notices.render_notice(policy, request_row, kind_choice, reason=reason_text)
    except ComplianceError as exc:
        widgets.show_error(exc, warning=True)
    else:
        with st.container(border=True):
            st.caption(f"Preview · to the subject · {widgets.plain(preview.subject)}")
            st.text(preview.text)
            with st.expander("HTML version"):
                st.code(preview.html, language="html")
        if st.button(f"Send the {kind_choice} notice", key="notice_send"):

            def send_notice() -> str:
                with context.session(policy) as s:
                    result = notices.send_notice(
                        s, policy, reference, kind_choice, actor=person, reason=reason_text
                    )
                if result.status == NoticeStatus.FAILED:
                    raise ComplianceError(
                        f"The {result.kind} notice could not be sent: {result.error}. "
                        "It is listed under Notices to the subject, with a Retry button."
                    )
                return f"The {result.kind} notice was sent to the subject."

            widgets.run_action(send_notice)

st.subheader("Internal notes")
for note in detail.notes:
    st.caption(f"{widgets.plain(note.author)}, {note.created_at:%Y-%m-%d %H:%M} UTC")
    st.text(note.body)
if "note" in actions:
    with st.form("dsar_note"):
        body = st.text_area(
            "Add a note (staff only; never sent to the subject)",
            max_chars=MAX_FREE_TEXT,
            key=f"note_body_{reference}",
        )
        if st.form_submit_button("Add note"):

            def add_note() -> str:
                with context.session(policy) as s:
                    desk.add_note(s, reference, author=person, body=body)
                widgets.forget_inputs(f"note_body_{reference}")
                return f"Note added to {reference}."

            widgets.run_action(add_note)

asked = widgets.pending_confirmation("dsar_approve") or widgets.pending_confirmation("dsar_reject")
if asked:
    target = asked["reference"]
    seen_version: str | None = (asked.get("versions") or {}).get(target)
    decision = "approve" if asked["action"] == "dsar_approve" else "reject"

    def review(reason: str | None) -> str:
        with context.session(policy) as s:
            r = decisions.review_dsar(
                s,
                target,
                decision,
                reviewer=person,
                four_eyes=policy.review.four_eyes,
                reason=reason,
                policy=policy,
                seen_version=seen_version,
                execute=True,
            )
        return f"{r.reference} {r.status}."

    with context.session(policy) as s:
        asked_request = dsar.get_dsar(s, target)
        method, target_kind = asked_request.identity_method, asked_request.kind
    # Only the method (a word from the policy) goes into markdown; the note is on the page.
    checked = (
        f"Identity checked by {method.replace('_', ' ')}; the note is on the request."
        if method
        else "**Identity check not recorded.**"
    )
    erasing = decision == "approve" and target_kind == DsarKind.ERASURE
    correcting = decision == "approve" and target_kind == DsarKind.RECTIFICATION
    widgets.confirm_dialog(
        f"{decision.capitalize()} {target}?",
        (
            checked
            + "\n\n"
            + (
                APPROVING_ERASURE
                if erasing
                else "Approved requests are processed by the next `process-dsar-requests` run, "
                "or exported at once with Export now."
                if decision == "approve"
                else "Nothing is exported or erased. Say why, for the audit trail."
            )
        ),
        confirm_label=decision.capitalize(),
        on_confirm=review,
        reason_label="Reason" if decision == "reject" else None,
        reason_required="Rejecting a request needs a reason." if decision == "reject" else None,
        details=(
            erasure_preview((target,))
            if erasing
            else rectification_preview(target)
            if correcting
            else None
        ),
    )
