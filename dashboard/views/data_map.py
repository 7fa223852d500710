"""Data map: where personal data lives, what erasure does to it, and what the last scan found."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from compliance.discovery.findings import StoredFinding, last_findings, run_scan
from compliance.discovery.overview import SystemView, data_map_overview, read_schemas
from compliance.discovery.record_of_processing import record_of_processing, render_record
from compliance.discovery.sampling import DEFAULT_SAMPLE, MAX_SAMPLE
from compliance.policy.loader import config_path, load_policy
from compliance.policy.systems import SystemKind
from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from compliance.store.states import COVERED_FINDINGS, FindingStatus
from dashboard import context, widgets

#: How each status reads in the tables, and its highlight.
STATUS_TEXT = {
    FindingStatus.UNCOVERED: "uncovered",
    FindingStatus.LEFT_AS_IS: "left as is",
    FindingStatus.RETAINED: "retained",
    FindingStatus.DELETED: "deleted",
    FindingStatus.ANONYMIZED: "anonymized",
    FindingStatus.ACCEPTED: "accepted",
}
HIGHLIGHT = {
    "uncovered": "background-color: #fecaca",
    "left as is": "background-color: #fde68a",
    "retained": "background-color: #dbeafe",
}
RECORD_FORMATS = {"md": ("Markdown", "text/markdown"), "csv": ("CSV", "text/csv"),
                  "json": ("JSON", "application/json")}  # fmt: skip

person = widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
policy = context.policy()
st.title("Data map")
st.caption(
    "Every table of every SQL system, what an erasure does to each column, how each table "
    "reaches its subject, and the personal data the last scan (`scan-personal-data`, weekly "
    "in deploy/crontab) found. A column the data map does not reach survives every erasure "
    "and is missing from every access export."
)
widgets.show_flash()


@st.cache_data(ttl=context.READ_TTL, show_spinner="Reading the systems' tables…")
def overview(path: str, mtime: float, version: tuple[int, str]) -> list[SystemView]:
    """The page's read model, per policy version and stored scan (schemas read live)."""
    current = load_policy(path)
    with context.session(current) as s:
        findings = last_findings(s)
    return data_map_overview(current, read_schemas(current), findings)


with context.session(policy) as s:
    findings: list[StoredFinding] = last_findings(s)
policy_file = Path(policy.path or config_path())
newest = max((f.scanned_at for f in findings), default=None)
systems = overview(
    str(policy_file),
    policy_file.stat().st_mtime if policy_file.exists() else 0.0,
    (len(findings), newest.isoformat() if newest else ""),
)

# ---------------------------------------------------------------- the last scan
# Each stored finding, judged against the policy as it stands now.
statuses = [
    (f"{s.name}.{t.name}.{c.column}", c.status)
    for s in systems
    for t in s.tables
    for c in t.columns
    if c.status is not None
]
if newest is None:
    st.info("No scan stored yet. Run it below, or `python -m jobs scan-personal-data --execute`.")
else:
    covered = sum(1 for _, status in statuses if status in COVERED_FINDINGS)
    coverage = f"{covered / len(statuses):.0%}" if statuses else "—"
    st.markdown(f"**Last scan:** {newest:%Y-%m-%d %H:%M} UTC")
    counts = st.columns(5)
    counts[0].metric("Personal columns", len(statuses))
    counts[1].metric("Uncovered", sum(1 for _, x in statuses if x is FindingStatus.UNCOVERED))
    counts[2].metric("Left as is", sum(1 for _, x in statuses if x is FindingStatus.LEFT_AS_IS))
    counts[3].metric("Retained", sum(1 for _, x in statuses if x is FindingStatus.RETAINED))
    counts[4].metric("Coverage", coverage)
    uncovered = [key for key, x in statuses if x is FindingStatus.UNCOVERED]
    left = [key for key, x in statuses if x is FindingStatus.LEFT_AS_IS]
    if uncovered:
        st.error(
            widgets.plain(f"Personal data no erasure reaches: {', '.join(uncovered)}. Map the "
                          "tables in the policy's [tables], or accept them in [scan] accept.")
        )  # fmt: skip
    if left:
        st.warning(
            widgets.plain(f"Left as they are when their rows are anonymized: {', '.join(left)}. "
                          "Name them in the table's anonymize, or accept them in [scan] accept.")
        )  # fmt: skip

actions = st.columns([2, 3])
with actions[0]:
    if person.has(COMPLIANCE_OFFICER):
        sample = st.number_input(
            "Rows sampled per table", 1, MAX_SAMPLE, DEFAULT_SAMPLE, key="scan_sample"
        )
        if st.button("Run the scan now", type="primary", icon=":material/search:"):

            def do_scan() -> str:
                with context.session(policy) as s, st.spinner("Scanning every SQL system…"):
                    report, plan = run_scan(s, policy, by=person, sample=int(sample))
                gaps = "; ".join(report.problems) or "nothing uncovered"
                return f"Scanned {len(plan.systems)} system(s): {gaps}."

            widgets.run_action(do_scan)
with actions[1]:
    st.markdown("**Record of processing (GDPR Art. 30)**")
    record = record_of_processing(policy, findings)
    buttons = st.columns(len(RECORD_FORMATS))
    for column, (fmt, (label, mime)) in zip(buttons, RECORD_FORMATS.items(), strict=True):
        column.download_button(
            label, render_record(record, fmt), file_name=f"records-of-processing.{fmt}",
            mime=mime, key=f"record_{fmt}", icon=":material/download:",
        )  # fmt: skip

# ---------------------------------------------------------------- one system
st.subheader("Systems")
names = {s.name: s for s in systems}
widgets.preset_from_query("map_system", "system", list(names))
chosen = names[st.selectbox(
    "System", list(names), key="map_system",
    format_func=lambda n: f"{n} ({names[n].kind})",
)]  # fmt: skip
if chosen.description:
    st.caption(widgets.plain(chosen.description))
if chosen.error is not None:
    (st.info if chosen.kind != SystemKind.SQL else st.error)(
        widgets.plain(f"{chosen.name}: {chosen.error}")
    )
    st.stop()

st.graphviz_chart(chosen.dot, width="stretch")
tables = pd.DataFrame(
    [
        {"table": t.name, "kind": "view" if t.view else "table", "action": t.action,
         "personal": t.personal, "uncovered": t.uncovered, "left_as_is": t.left_as_is}
        for t in chosen.tables
    ],
    columns=["table", "kind", "action", "personal", "uncovered", "left_as_is"],
)  # fmt: skip
widgets.table(tables, widths={"table": "medium", "personal": 80, "uncovered": 90, "left_as_is": 90})
if not chosen.tables:
    st.caption("This system has no tables.")
    st.stop()
by_name = {t.name: t for t in chosen.tables}
widgets.preset_from_query(f"map_table_{chosen.name}", "table", list(by_name))
# Open first what needs attention: uncovered, then left as is, then the subjects table.
listing = {s.table for s in policy.subject_types.values()}
first = max(chosen.tables, key=lambda t: (t.uncovered, t.left_as_is, t.name in listing))
table = by_name[st.selectbox(
    "Open a table", list(by_name), index=list(by_name).index(first.name),
    key=f"map_table_{chosen.name}",
    format_func=lambda n: f"{n} · {by_name[n].action}"
    + (f" · {by_name[n].uncovered} uncovered" if by_name[n].uncovered else ""),
)]  # fmt: skip
st.markdown(f"**{widgets.plain(table.name)}** · {widgets.plain(table.action)}")
facts = {
    "Link to the subject": table.link,
    "Rules that reach it": "; ".join(table.rules) or "none",
    "Retention": "; ".join(table.retention) or "none",
}
if table.legal_basis:
    facts["Legal basis"] = table.legal_basis
for label, value in facts.items():
    st.caption(f"{label}: {widgets.plain(value)}")
columns = pd.DataFrame(
    [
        {"column": c.column, "type": c.type, "erasure": c.erasure,
         "export": "exported" if c.exported else ("not mapped" if table.action == "not mapped"
                                                  else "excluded"),
         "last_scan": f"{c.found}: {STATUS_TEXT[c.status]}" if c.found and c.status else "",
         "recognisers": c.recognisers}
        for c in table.columns
    ],
    columns=["column", "type", "erasure", "export", "last_scan", "recognisers"],
)  # fmt: skip


def highlight(cell: str) -> str:
    return next((css for word, css in HIGHLIGHT.items() if cell.endswith(word)), "")


st.dataframe(
    columns.style.map(highlight, subset=["last_scan"]),
    hide_index=True,
    width="stretch",
    column_config=widgets.labels(columns.columns, headers={"last_scan": "Last scan"}),
)
for note in table.notes:
    st.caption(widgets.plain(note))
