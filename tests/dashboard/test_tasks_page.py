"""The System tasks page: an officer confirms a manual step, and the record is applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from compliance.deletion.apply import apply_deletions
from compliance.store.models import AuditEvent, DeletionRecord, ErasureTask
from dashboard import widgets
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.dashboard.conftest import MANAGER, OFFICER, SUPPORT, OpenApp, button, texts
from tests.systems.test_systems import accept_everything


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


def access_request_reaching_newsletter(deployment: Deployment, subject_id: str) -> str:
    """An approved access request for ``subject_id`` that also reaches the manual system
    ``newsletter``, processed once: its access task there waits for a person. Its reference."""
    from compliance.dsar.decisions import review_dsar
    from compliance.dsar.processing import process_dsar_requests
    from compliance.dsar.requests import submit
    from tests.conftest import DPO, SUPPORT_STAFF

    policy = deployment.policy_path.read_text()
    deployment.write_policy(policy.replace("systems = []  ", 'systems = ["newsletter"]  ', 1))
    with deployment.session() as s:
        reference = submit(
            s, deployment.policy(), deployment.app_engine, kind="access", subject_id=subject_id,
            requested_by=SUPPORT_STAFF, execute=True,
        ).request.reference  # fmt: skip
        review_dsar(s, reference, "approve", reviewer=DPO, four_eyes=False, execute=True)
        assert process_dsar_requests(s, deployment.datamap(), actor="worker", execute=True).waiting
    return reference


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


def test_managers_see_each_systems_backlog_on_progress(
    waiting: Deployment, open_app: OpenApp
) -> None:
    with waiting.session() as s:
        by_system = dict(
            s.execute(
                select(ErasureTask.system, func.count())
                .where(ErasureTask.status.in_(["pending", "sent"]))
                .group_by(ErasureTask.system)
            ).all()
        )
        done = s.scalar(
            select(func.count()).where(
                ErasureTask.system == "app_database", ErasureTask.status == "done"
            )
        )
    assert by_system.get("newsletter", 0) > 0 and done
    at = open_app(MANAGER, "views/progress.py")
    assert not at.exception, at.exception
    assert "Backlog per system" in [h.value for h in at.subheader]
    (frame,) = [d.value for d in at.dataframe if "oldest_waiting_days" in d.value.columns]
    rows = frame.set_index("system")
    assert rows.loc["newsletter", "kind"] == "manual"
    assert rows.loc["newsletter", "waiting"] == by_system["newsletter"]
    assert rows.loc["newsletter", "oldest_waiting_days"] == 0
    assert rows.loc["app_database", "done"] == done
    assert rows.loc["app_database", "waiting"] == by_system.get("app_database", 0)


def test_the_backlog_shows_a_task_done_elsewhere_on_the_next_run(
    waiting: Deployment, open_app: OpenApp
) -> None:
    """Cached for speed, but keyed by the tasks' version: a person confirming in another
    session, or an operator's SQL, shows at once instead of after the cache's 30 s."""
    at = open_app(OFFICER, "views/tasks.py")

    def newsletter_waiting() -> int:
        (frame,) = [d.value for d in at.dataframe if "oldest_waiting_days" in d.value.columns]
        return int(frame.set_index("system").loc["newsletter", "waiting"])

    before = newsletter_waiting()
    with waiting.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE erasure_tasks SET status = 'done' WHERE id = "
                "(SELECT min(id) FROM erasure_tasks WHERE system = 'newsletter' "
                "AND status = 'pending')"
            )
        )
    at.run()
    assert newsletter_waiting() == before - 1


def test_a_refused_confirmation_keeps_the_note_typed_for_the_task(
    queue: Deployment, open_app: OpenApp
) -> None:
    access_request_reaching_newsletter(queue, "43")
    with queue.session() as s:
        task_id = s.scalars(
            select(ErasureTask.id).where(
                ErasureTask.system == "newsletter", ErasureTask.action == "access"
            )
        ).one()
    at = open_app(OFFICER, "views/tasks.py")
    at.text_input(key=f"task_note_{task_id}").input("Exported from the newsletter tool").run()
    at.button(key=f"task_confirm_{task_id}").click().run()  # no file attached: refused

    assert any("needs the file" in e.value for e in at.error), [e.value for e in at.error]
    assert at.text_input(key=f"task_note_{task_id}").value == "Exported from the newsletter tool"
    with queue.session() as s:
        task = s.get(ErasureTask, task_id)
        assert task is not None and task.status == "pending"


def test_the_filters_narrow_the_list_its_count_and_what_all_n_confirms(
    waiting: Deployment, open_app: OpenApp
) -> None:
    access_request_reaching_newsletter(waiting, "45")
    with waiting.session() as s:
        erasures = list(
            s.scalars(
                select(ErasureTask.id)
                .where(ErasureTask.system == "newsletter", ErasureTask.action == "erasure")
                .order_by(ErasureTask.id)
            )
        )
        (access,) = s.scalars(
            select(ErasureTask.id).where(
                ErasureTask.system == "newsletter", ErasureTask.action == "access"
            )
        )
    aged = erasures[:3]  # waiting for a week
    with waiting.engine.begin() as conn:
        conn.execute(
            update(ErasureTask)
            .where(ErasureTask.id.in_(aged))
            .values(created_at=datetime.now(UTC) - timedelta(days=7))
        )
    at = open_app(OFFICER, "views/tasks.py")
    everything = len(erasures) + 1
    assert f"Manual tasks waiting ({everything})" in [h.value for h in at.subheader]

    def shown_ids() -> set[int]:
        return {int(b.key.rsplit("_", 1)[1]) for b in at.button if b.label == "Confirm done"}

    at.selectbox(key="task_kind").select("access").run()
    assert "Manual tasks waiting (1)" in [h.value for h in at.subheader]
    assert shown_ids() == {access}
    at.selectbox(key="task_kind").select(widgets.ALL).run()
    at.number_input(key="task_age").set_value(5).run()
    assert "Manual tasks waiting (3)" in [h.value for h in at.subheader]
    assert shown_ids() == set(aged)

    at.checkbox(key="task_all").check().run()
    at.text_input(key="task_bulk_note").input("Deleted in the newsletter tool").run()
    button(at, "Confirm 3 task(s) done").click().run()
    assert "3 task(s) confirmed, each audited on its own." in texts(at, "success")
    with waiting.session() as s:
        done = set(
            s.scalars(
                select(ErasureTask.id).where(
                    ErasureTask.status == "done", ErasureTask.system == "newsletter"
                )
            )
        )
    assert done == set(aged)


def test_a_request_shows_where_each_system_stands(queue: Deployment, open_app: OpenApp) -> None:
    from compliance.dsar.processing import process_dsar_requests
    from compliance.dsar.requests import get_dsar
    from compliance.storage import export_store
    from compliance.store.models import utcnow
    from compliance.systems.manual_tasks import confirm_task
    from compliance.systems.tasks import tasks_of_request

    reference = access_request_reaching_newsletter(queue, "42")
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    assert not at.exception, at.exception
    (frame,) = [d.value for d in at.dataframe if "done_by" in d.value.columns]
    assert list(frame["system"]) == ["app_database", "billing", "newsletter"]
    assert set(frame["status"]) == {"pending"}, "the ZIP is built once every system answered"

    with queue.session() as s:
        mine = tasks_of_request(s, get_dsar(s, reference))
        (task,) = [t for t in mine if t.system_kind == "manual"]
        confirm_task(
            s, task.id, actor=person(OFFICER), note="Exported", execute=True,
            upload=("contact.csv", b"email\nx@example.org\n"),
            store=export_store(queue.policy()),
        )  # fmt: skip
        later = utcnow() + timedelta(minutes=2)
        done = process_dsar_requests(s, queue.datamap(), actor="worker", execute=True, now=later)
        assert done.ready == [reference]
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    (frame,) = [d.value for d in at.dataframe if "done_by" in d.value.columns]
    assert set(frame["status"]) == {"done"}
    assert frame.set_index("system").loc["newsletter", "done_by"] == OFFICER
