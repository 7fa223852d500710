"""System tasks: where each erasure and access request stands in every system.

Manual tasks wait here for a person: they follow the policy's instructions, then confirm
with a note (and, for an access request, the file with that system's data). Failed
webhook tasks are retried from here once the cause is fixed.
"""

from __future__ import annotations

import streamlit as st

from compliance.dsar.requests import KINDS
from compliance.free_text import MAX_FREE_TEXT
from compliance.policy.systems import SystemKind
from compliance.roles import COMPLIANCE_OFFICER
from compliance.storage import export_store
from compliance.store.states import DsarKind, TaskStatus
from compliance.systems import manual_tasks, tasks
from compliance.systems.payloads import RESTRICTION_END, task_instructions
from dashboard import context, widgets

PAGE_SIZE = 25
SHOWN_KEY = "task_all_shown"  # the ids "All N" stood for when the officer last saw it
#: What a manual task asks of the person, by the kind of request it serves.
DOING: dict[str, str] = {
    DsarKind.ERASURE: "Erase",
    DsarKind.ACCESS: "Export",
    DsarKind.OBJECTION: "Record an objection",
    DsarKind.RESTRICTION: "Restrict processing",
    DsarKind.RECTIFICATION: "Correct",
    RESTRICTION_END: "End a restriction",
}

widgets.require_role(COMPLIANCE_OFFICER)
current = context.policy()
st.title("System tasks")
st.caption(
    "A deletion record is applied, and a request completed, only when every system it "
    "reaches says done. SQL tasks run in `apply-deletions` / `process-dsar-requests`; "
    "webhook tasks are sent and retried by the same jobs; manual tasks wait for you."
)
widgets.show_flash()

backlog = context.system_backlog(current)
if not backlog.empty:
    st.subheader("Backlog per system")
    widgets.table(backlog)

manual_systems = sorted(n for n, s in current.systems.items() if s.kind == SystemKind.MANUAL)
by_system, by_kind, by_age = st.columns(3)
system_choice = by_system.selectbox("System", [widgets.ALL, *manual_systems], key="task_system")
kind_choice = by_kind.selectbox("Kind", [widgets.ALL, *KINDS], key="task_kind")
older = by_age.number_input("Waiting at least (days)", min_value=0, step=1, key="task_age")
filters = manual_tasks.ManualTaskFilter(
    system=widgets.unless_all(system_choice),
    action=widgets.unless_all(kind_choice),
    older_than_days=int(older) or None,
)
with context.session(current) as session:
    total = manual_tasks.count_manual_tasks(session, filters)
    pages = max(1, -(-total // PAGE_SIZE))
    number = min(int(st.session_state.get("task_page", 1) or 1), pages)
    waiting = manual_tasks.manual_tasks(
        session, filters, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
    )
    failed = tasks.list_tasks(session, status=[TaskStatus.FAILED], limit=50)

# The whole list's count: the same tasks Progress's backlog counts as waiting.
st.subheader(f"Manual tasks waiting ({total})")
if not waiting:
    st.success("No manual task is waiting." if not total else "Nothing on this page.")
else:
    first = (number - 1) * PAGE_SIZE + 1
    st.caption(f"Tasks {first}–{first + len(waiting) - 1} of {total}")
    if pages > 1:
        st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="task_page")
    with st.expander("Confirm several at once"):
        every = st.checkbox(f"All {total} task(s) matching the filter", key="task_all")
        # "All N" means the N the officer saw: the ids are kept from the run that drew the
        # button, so a task arriving before the click (a retry, a new request) waits for a
        # look of its own instead of being confirmed unseen.
        shown: list[int] | None = st.session_state.pop(SHOWN_KEY, None)
        if every:
            with context.session(current) as s:
                st.session_state[SHOWN_KEY] = manual_tasks.manual_task_ids(s, filters)
        several: list[int] = (
            []
            if every
            else st.multiselect("Tasks on this page", [t.id for t in waiting], key="task_bulk")
        )
        bulk_note = st.text_input(
            "What did you do? (one note for every task)",
            key="task_bulk_note",
            max_chars=MAX_FREE_TEXT,
        )
        count = total if every else len(several)
        if st.button(f"Confirm {count} task(s) done", key="task_bulk_confirm", disabled=not count):

            def confirm_several() -> str:
                ids = (shown if shown is not None else []) if every else several
                with context.session(current) as s:
                    results = manual_tasks.confirm_tasks(
                        s, ids, actor=context.identity(), note=bulk_note, execute=True
                    )
                confirmed = [r for r in results if r.confirmed]
                message = f"{len(confirmed)} task(s) confirmed, each audited on its own."
                arrived = len(set(st.session_state.get(SHOWN_KEY, [])) - set(ids)) if every else 0
                if arrived:
                    message += f" {arrived} task(s) that arrived since you looked still wait."
                for skipped in [r for r in results if not r.confirmed][:10]:
                    message += f" Skipped: {skipped.why_not}."
                st.session_state.pop("task_bulk_note", None)
                st.session_state.pop("task_bulk", None)
                return message

            widgets.run_action(confirm_several)
for task in waiting:
    system = current.systems.get(task.system)
    what = DOING.get(task.action, task.action.capitalize())
    subject = task.subject or {}
    with st.container(border=True):
        st.markdown(f"**Task {task.id}** · {what} in **{task.system}**")
        kind = f" ({subject['type']})" if subject.get("type") else ""  # customers, employees
        st.text(f"Subject{kind}: id {subject.get('id', '?')}, email {subject.get('email') or '—'}")
        with context.session(current) as s:
            for line in task_instructions(s, task):
                st.text(line)  # may quote what the subject typed: plain text
        if system is not None and system.instructions:
            st.text(system.instructions)  # typed by people: plain text, never markdown
        note = st.text_input(
            "What did you do?", key=f"task_note_{task.id}", max_chars=MAX_FREE_TEXT
        )
        upload = None
        if task.action == DsarKind.ACCESS:
            upload = st.file_uploader("The system's data (goes into the ZIP)", key=f"up_{task.id}")
        if st.button("Confirm done", key=f"task_confirm_{task.id}", type="primary"):

            def confirm(task_id: int = task.id, text: str = note, file: object = upload) -> str:
                content = None
                if file is not None:
                    content = (file.name, file.getvalue())  # type: ignore[attr-defined]
                with context.session(current) as s:
                    manual_tasks.confirm_task(
                        s, task_id, actor=context.identity(), note=text, execute=True,
                        upload=content, store=export_store(current),
                    )  # fmt: skip
                return f"Task {task_id} confirmed."

            widgets.run_action(confirm)

st.subheader(f"Failed tasks ({len(failed)})")
if not failed:
    st.caption("No task has failed.")
for task in failed:
    with st.container(border=True):
        st.markdown(f"**Task {task.id}** · {task.system} ({task.system_kind})")
        st.text(f"After {task.attempts} attempt(s): {task.last_error or 'failed'}")
        if st.button("Retry", key=f"task_retry_{task.id}"):

            def retry(task_id: int = task.id) -> str:
                with context.session(current) as s:
                    manual_tasks.retry_task(s, task_id, actor=context.identity(), execute=True)
                return f"Task {task_id} goes back in the queue; the next run tries it."

            widgets.run_action(retry)
