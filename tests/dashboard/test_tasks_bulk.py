"""System tasks at scale: the count Progress shows, paging, filters, and one bulk action."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from compliance.store.models import AuditEvent, ErasureTask
from tests.conftest import Deployment, fill_demo
from tests.dashboard.conftest import OFFICER, OpenApp, button, texts
from tests.test_bulk_task_confirm import newsletter_backlog, waiting_tasks


@pytest.fixture
def queue(deployment: Deployment) -> Deployment:
    """A larger demo (open_app's deployment) where more than 300 manual tasks wait."""
    fill_demo(deployment, users_count=1000, seed=7)
    return waiting_tasks(deployment)


def test_three_hundred_manual_tasks_are_confirmed_in_one_bulk_action(
    queue: Deployment, open_app: OpenApp
) -> None:
    deployment = queue
    total = newsletter_backlog(deployment)
    assert total >= 300
    at = open_app(OFFICER, "views/tasks.py")
    assert not at.exception, at.exception
    assert f"Manual tasks waiting ({total})" in [h.value for h in at.subheader]
    assert len([b for b in at.button if b.label == "Confirm done"]) == 25  # one page

    at.selectbox(key="task_system").select("newsletter").run()
    at.checkbox(key="task_all").check().run()
    button(at, f"Confirm {total} task(s) done").click().run()
    assert any("needs a note" in e for e in texts(at, "error"))  # refused: nothing lost
    assert at.checkbox(key="task_all").value
    at.text_input(key="task_bulk_note").input("Removed from the newsletter tool").run()
    button(at, f"Confirm {total} task(s) done").click().run()

    assert f"{total} task(s) confirmed, each audited on its own." in texts(at, "success")
    assert "Manual tasks waiting (0)" in [h.value for h in at.subheader]
    with deployment.session() as s:
        done = s.scalar(
            select(func.count()).where(
                ErasureTask.system == "newsletter", ErasureTask.done_by == OFFICER
            )
        )
        events = s.scalar(
            select(func.count()).where(
                AuditEvent.action == "task.done", AuditEvent.actor == OFFICER
            )
        )
    assert done == events == total
