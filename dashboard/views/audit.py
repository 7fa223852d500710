"""Audit log: every decision and change, who made it, and whether the chain is intact."""

from __future__ import annotations

import streamlit as st

from compliance.errors import ComplianceError
from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from dashboard import context, widgets

PAGE_SIZE = 100

widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
url = context.policy().database_url
st.title("Audit log")

check = context.chain_check(url)
if check.ok:
    st.success(f"Hash chain verified: {check.checked} events, none changed, removed or reordered.")
else:
    st.error(widgets.plain(f"Hash chain broken at event {check.broken_event_id}: {check.problem}"))

actors, actions = context.audit_filter_values(url)
who, what, since, until = st.columns(4)
actor = who.selectbox("Actor", [widgets.ALL, *actors], key="audit_actor")
action = what.selectbox("Action", [widgets.ALL, *actions], key="audit_action")
start = since.date_input("From (UTC)", value=None, key="audit_since")
end = until.date_input("To (UTC)", value=None, key="audit_until")
filters = (widgets.unless_all(actor), widgets.unless_all(action), start, end)
try:
    page = widgets.load_page(
        "audit_page", PAGE_SIZE, lambda n, o: context.audit_log(url, *filters, n, o)
    )
except ComplianceError as exc:
    widgets.show_error(exc)
    st.stop()
widgets.table_with_details(
    page.frame,
    ["details"],
    key="audit_rows",
    title=lambda e: f"Event {e['id']}: {e['action']} by {e['actor']}",
    widths={"actor": 200, "action": 230, "target_type": 110, "target_id": 150},
)
widgets.pager("audit_page", page)
if page.total:
    widgets.csv_download(
        "Filtered log as CSV",
        lambda: context.audit_log_export(url, *filters),
        "audit_log.csv",
        "csv_audit",
    )
