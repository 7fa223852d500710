"""System tasks: where each erasure and access request stands in every system.

Manual tasks wait here for a person: they follow the policy's instructions, then confirm
with a note (and, for an access request, the file with that system's data). Failed
webhook tasks are retried from here once the cause is fixed.
"""

from __future__ import annotations

import streamlit as st

from compliance.free_text import MAX_FREE_TEXT
from compliance.roles import COMPLIANCE_OFFICER
from compliance.store.states import TaskStatus
from compliance.systems import tasks
from dashboard import context, widgets

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

with context.session(current) as session:
    waiting = tasks.list_tasks(session, status=[TaskStatus.PENDING], kind="manual", limit=50)
    failed = tasks.list_tasks(session, status=[TaskStatus.FAILED], limit=50)

st.subheader(f"Manual tasks waiting ({len(waiting)})")
if not waiting:
    st.success("No manual task is waiting.")
for task in waiting:
    system = current.systems.get(task.system)
    what = "Erase" if task.action == "erasure" else "Export"
    subject = task.subject or {}
    with st.container(border=True):
        st.markdown(f"**Task {task.id}** · {what} in **{task.system}**")
        st.text(f"Subject: id {subject.get('id', '?')}, email {subject.get('email') or '—'}")
        if system is not None and system.instructions:
            st.text(system.instructions)  # typed by people: plain text, never markdown
        note = st.text_input(
            "What did you do?", key=f"task_note_{task.id}", max_chars=MAX_FREE_TEXT
        )
        upload = None
        if task.action == "access":
            upload = st.file_uploader("The system's data (goes into the ZIP)", key=f"up_{task.id}")
        if st.button("Confirm done", key=f"task_confirm_{task.id}", type="primary"):

            def confirm(task_id: int = task.id, text: str = note, file: object = upload) -> str:
                content = None
                if file is not None:
                    content = (file.name, file.getvalue())  # type: ignore[attr-defined]
                with context.session(current) as s:
                    tasks.confirm_task(
                        s, task_id, actor=context.identity(), note=text, execute=True,
                        upload=content, export_dir=current.export_dir,
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
                    tasks.retry_task(s, task_id, actor=context.identity(), execute=True)
                return f"Task {task_id} goes back in the queue; the next run tries it."

            widgets.run_action(retry)
