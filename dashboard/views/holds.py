"""Legal holds: officers see, place and lift the holds that win over every erasure rule."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from compliance.deletion.holds import (
    lift_hold,
    list_holds,
    place_hold,
    plan_lift_hold,
    plan_place_hold,
)
from compliance.dsar.objections import COLUMNS as SUPPRESSION_COLUMNS
from compliance.dsar.objections import list_suppressions, suppressions_csv
from compliance.dsar.subjects import resolve_subject
from compliance.free_text import MAX_FREE_TEXT
from compliance.roles import COMPLIANCE_OFFICER
from compliance.store.states import HoldKind
from dashboard import context, widgets

COLUMNS = [
    "id", "subject_type", "subject_id", "kind", "status", "reason", "placed_by", "placed_at",
    "until", "lifted_by", "lifted_at", "lifted_reason",
]  # fmt: skip

widgets.require_role(COMPLIANCE_OFFICER)
policy = context.policy()
st.title("Legal holds")
st.caption(
    "A subject on legal hold is never erased: no bucket proposes them, accepted records are "
    "refused by apply-deletions, erasure requests wait and retention cleanup keeps their rows. "
    "A restriction of processing (a data subject's request) holds the same way."
)
widgets.show_flash()

show_all = st.toggle("Show lifted and ended holds too", key="holds_all")
with context.session(policy) as s:
    holds = list_holds(s, active_only=not show_all)
frame = pd.DataFrame(
    [
        {
            "id": h.id,
            "subject_type": h.subject_type,
            "subject_id": h.subject_id,
            "kind": h.kind,
            "status": "active" if h.active else ("lifted" if h.lifted_at else "ended"),
            "reason": h.reason,
            "placed_by": h.placed_by,
            "placed_at": h.placed_at,
            "until": h.until.isoformat() if h.until else "until lifted",
            "lifted_by": h.lifted_by,
            "lifted_at": h.lifted_at,
            "lifted_reason": h.lifted_reason,
        }
        for h in holds
    ],
    columns=COLUMNS,
)
if not policy.multiple_subject_types:  # one kind of data subject: nothing to tell apart
    frame = frame.drop(columns=["subject_type"])
if frame.empty:
    st.caption("No legal holds in force.")
else:
    # Reasons are free text: read whole below the table, with who lifted the hold and when.
    widgets.table_with_details(
        frame if show_all else frame.drop(columns=["lifted_by", "lifted_at", "lifted_reason"]),
        ["reason", "lifted_reason"] if show_all else ["reason"],
        key="hold_rows",
        title=lambda h: f"Hold {h['id']} on subject {h['subject_id']} ({h['status']})",
        widths={"placed_by": 200, "lifted_by": 200, "until": 110},
    )

actor = context.identity()
place, lift = st.columns(2)
with place.form("place_hold"):  # a refused submit keeps what was typed
    st.markdown("**Place a hold**")
    by = st.radio("Find the subject by", ["subject id", "email"], horizontal=True, key="hold_by")
    who = st.text_input("Subject id or email", key="hold_who")
    subject_type = widgets.subject_type_picker(policy, "hold_subject_type")
    reason = st.text_area("Reason (required)", max_chars=MAX_FREE_TEXT, key="hold_reason")
    ends = st.checkbox("The hold ends on a date", key="hold_ends")
    until = st.date_input("Last day of the hold (UTC)", value=date.today() + timedelta(days=365))
    if st.form_submit_button("Place hold", type="primary"):

        def do_place() -> str:
            key, _ = resolve_subject(
                policy,
                context.engine(policy.app_database_url),
                subject_id=who if by == "subject id" else None,
                email=who if by == "email" else None,
                subject_type=subject_type,
            )
            with context.session(policy) as s:
                plan = plan_place_hold(
                    s, subject_id=key, reason=reason, by=actor, until=until if ends else None,
                    subject_type=policy.subject_kind(subject_type).name,
                )  # fmt: skip
                hold = place_hold(s, plan)
            widgets.forget_inputs(
                "hold_by", "hold_who", "hold_subject_type", "hold_reason", "hold_ends"
            )  # fmt: skip
            return f"Placed legal hold {hold.id} on subject {key}."

        widgets.run_action(do_place)

# A restriction of processing is lifted on its request, after the subject is told.
active = [h for h in holds if h.active and h.kind == HoldKind.LEGAL]
with lift.form("lift_hold"):
    st.markdown("**Lift a hold**")
    labels = {h.id: f"#{h.id} · subject {h.subject_id}" for h in active}
    chosen = st.selectbox(
        "Hold", list(labels), format_func=lambda h: labels[h], index=None, key="lift_hold_id"
    )
    why = st.text_area("Reason for lifting (required)", max_chars=MAX_FREE_TEXT, key="lift_why")
    if st.form_submit_button("Lift hold"):
        if chosen is None:
            st.error("Choose the hold to lift.")
        else:
            hold_id = int(chosen)

            def do_lift() -> str:
                with context.session(policy) as s:
                    lifted = lift_hold(s, plan_lift_hold(s, hold_id, reason=why, by=actor))
                widgets.forget_inputs("lift_hold_id", "lift_why")
                return f"Lifted legal hold {lifted.id} on subject {lifted.subject_id}."

            widgets.run_action(do_lift)

st.subheader("Suppression list")
st.caption(
    "Subjects who objected (GDPR Art. 21), by key and the keyed hash of their email: no "
    "address or name is kept, and the list outlives their erasure."
)
with context.session(policy) as s:
    suppressions = list_suppressions(s, policy)
if not suppressions:
    st.caption("Nobody has objected yet.")
else:
    widgets.table(
        pd.DataFrame([asdict(v) for v in suppressions], columns=list(SUPPRESSION_COLUMNS))
    )
    st.download_button(
        "Download the suppression list (CSV)",
        suppressions_csv(suppressions),
        file_name="suppressions.csv",
        mime="text/csv",
    )
