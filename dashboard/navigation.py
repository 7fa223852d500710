"""Which pages exist, who may open each, and where each person lands.

Kept apart from app.py (a script Streamlit runs) so tests can hold it against the README.
The page scripts live in views/, not pages/: a pages/ folder next to app.py makes Streamlit
list its files itself and answer a deep link with "Page not found" before app.py has run.
"""

from __future__ import annotations

from compliance.roles import COMPLIANCE_OFFICER, MANAGER, SUPPORT

#: (file, title, icon, roles that see it)
Entry = tuple[str, str, str, set[str]]

# The title's URL path (deletion_batches,
# dsar_requests, ...) is what Slack alerts link to, so keep titles stable.
PAGES: list[Entry] = [
    ("views/batches.py", "Deletion batches", ":material/delete_sweep:", {COMPLIANCE_OFFICER}),
    ("views/dsar.py", "DSAR requests", ":material/folder_shared:", {COMPLIANCE_OFFICER, SUPPORT}),
    ("views/tasks.py", "System tasks", ":material/checklist:", {COMPLIANCE_OFFICER}),
    ("views/holds.py", "Legal holds", ":material/gavel:", {COMPLIANCE_OFFICER}),
    ("views/progress.py", "Progress", ":material/monitoring:", {COMPLIANCE_OFFICER, MANAGER}),
    ("views/audit.py", "Audit log", ":material/receipt_long:", {COMPLIANCE_OFFICER, MANAGER}),
    ("views/job_runs.py", "Jobs", ":material/schedule:", {COMPLIANCE_OFFICER, MANAGER}),
    ("views/data_map.py", "Data map", ":material/account_tree:", {COMPLIANCE_OFFICER, MANAGER}),
]


# Pages that exist only in demo mode ([dashboard] demo_mode = true), for every role: what
# the demo wrote to its [smtp] outbox instead of sending.
DEMO_PAGES: list[Entry] = [
    ("views/outbox.py", "Outbox", ":material/outbox:", {COMPLIANCE_OFFICER, SUPPORT, MANAGER}),
]


def pages_for(*, demo_mode: bool) -> list[Entry]:
    """The pages of this dashboard: the demo's own pages only in demo mode."""
    return PAGES + DEMO_PAGES if demo_mode else PAGES


def url_path(title: str) -> str:
    return title.lower().replace(" ", "_")


# Where each person lands: the page of their most powerful role.
LANDING = [
    (COMPLIANCE_OFFICER, "views/batches.py"),
    (MANAGER, "views/progress.py"),
    (SUPPORT, "views/dsar.py"),
    (None, ""),
]
