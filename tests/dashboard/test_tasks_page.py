"""The System tasks page: an officer confirms a manual step, and the record is applied."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from compliance.deletion.apply import apply_deletions
from compliance.store.models import AuditEvent, DeletionRecord, ErasureTask
from tests.conftest import DEMO_POLICY, Deployment
from tests.dashboard.conftest import OFFICER, SUPPORT, OpenApp
from tests.test_systems import accept_everything


@pytest.fixture
def waiting(queue: Deployment) -> Deployment:
    """closed_accounts also reaches a manual system; its accepted records wait for a person."""
    queue.write_policy(
        DEMO_POLICY.replace(
            "[buckets.closed_accounts]\n", '[buckets.closed_accounts]\nsystems = ["newsletter"]\n'
        )
    )
    accept_everything(queue, "closed_accounts")
    with queue.session() as session:
        result = apply_deletions(session, queue.datamap(), actor="jobs", execute=True)
    assert result.waiting > 0 and result.applied == 0
    return queue


def test_an_officer_confirms_a_manual_task_with_a_note_and_the_record_is_applied(
    waiting: Deployment, open_app: OpenApp
) -> None:
    with waiting.session() as s:
        task = s.scalars(
            select(ErasureTask).where(ErasureTask.system == "newsletter").order_by(ErasureTask.id)
        ).first()
        assert task is not None and task.subject and "@" in task.subject["email"]
    at = open_app(OFFICER, "views/tasks.py")
    assert not at.exception, at.exception
    shown = " ".join(t.value for t in at.text)
    assert "Erasure: choose 'Delete permanently' (not 'Unsubscribe')." in shown
    assert task.subject["email"] in shown

    at.button(key=f"task_confirm_{task.id}").click().run()  # no note: refused
    assert any("needs a note" in e.value for e in at.error)
    at.text_input(key=f"task_note_{task.id}").input("Deleted in the newsletter tool").run()
    at.button(key=f"task_confirm_{task.id}").click().run()

    assert not at.exception, at.exception
    assert any(f"Task {task.id} confirmed" in s.value.replace("\\", "") for s in at.success)
    with waiting.session() as s:
        done = s.get(ErasureTask, task.id)
        assert done is not None
        assert (done.status, done.done_by, done.note) == (
            "done", OFFICER, "Deleted in the newsletter tool",
        )  # fmt: skip
        assert done.subject is None, "the email is dropped once the step is done"
        record = s.get(DeletionRecord, done.deletion_record_id)
        assert record is not None and record.deletion_applied_at is not None
        events = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert events[-2:] == ["task.done", "deletion_records.applied"]


def test_support_cannot_open_the_task_list(waiting: Deployment, open_app: OpenApp) -> None:
    at = open_app(SUPPORT)
    assert not at.exception, at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/tasks.py")
