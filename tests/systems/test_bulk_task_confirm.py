"""Manual tasks in bulk: one note, every task confirmed and audited on its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from compliance.deletion.apply import apply_deletions
from compliance.errors import InvalidInput, PermissionDenied
from compliance.store.models import AuditEvent, DeletionRecord, ErasureTask
from compliance.systems.backlog import system_backlog
from compliance.systems.manual_tasks import (
    ManualTaskFilter,
    confirm_tasks,
    count_manual_tasks,
    manual_task_ids,
    manual_tasks,
)
from tests.conftest import (
    DEMO_POLICY,
    DPO,
    SUPPORT_STAFF,
    Backend,
    Deployment,
    fill_demo,
    make_deployment,
)
from tests.systems.test_systems import accept_everything

BOTH_BUCKETS_MANUAL = DEMO_POLICY.replace(
    "[buckets.closed_accounts]\n", '[buckets.closed_accounts]\nsystems = ["newsletter"]\n'
)


def waiting_tasks(d: Deployment) -> Deployment:
    """Every accepted erasure of two buckets waits for the newsletter's manual step."""
    d.write_policy(BOTH_BUCKETS_MANUAL)
    for bucket in ("closed_accounts", "inactive_accounts"):
        accept_everything(d, bucket)
    with d.session() as s:
        result = apply_deletions(s, d.datamap(), actor="jobs", execute=True)
    assert result.waiting > 0
    return d


@pytest.fixture
def many(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    """A larger demo: more than 300 manual tasks wait."""
    d = make_deployment(backend, tmp_path / "deploy")
    fill_demo(d, users_count=1000, seed=7)
    yield waiting_tasks(d)
    d.dispose()


def newsletter_backlog(d: Deployment) -> int:
    with d.session() as s:
        frame = system_backlog(s, {"newsletter": "manual"}).set_index("system")
    return int(frame.loc["newsletter", "waiting"])


def test_three_hundred_manual_tasks_are_confirmed_in_one_action_each_audited_on_its_own(
    many: Deployment,
) -> None:
    with many.session() as s:
        waiting = count_manual_tasks(s, ManualTaskFilter())
        chosen = manual_task_ids(s, ManualTaskFilter())[:300]
    assert waiting >= 300 and len(chosen) == 300
    assert waiting == newsletter_backlog(many)  # the page's count is Progress's backlog

    with many.session() as s:
        dry = confirm_tasks(s, chosen, actor=DPO, note="Removed in the tool", execute=False)
    assert [r.task_id for r in dry if r.confirmed] == chosen
    with many.session() as s:
        assert count_manual_tasks(s, ManualTaskFilter()) == waiting  # the dry run changed nothing

    with many.session() as s:
        done = confirm_tasks(s, chosen, actor=DPO, note="Removed in the tool", execute=True)
    assert [r.task_id for r in done if r.confirmed] == chosen
    with many.session() as s:
        tasks = s.scalars(select(ErasureTask).where(ErasureTask.id.in_(chosen))).all()
        assert {(t.status, t.done_by, t.note) for t in tasks} == {
            ("done", DPO.email, "Removed in the tool")
        }
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "task.done", AuditEvent.actor == DPO.email
            )
        ).all()
        assert sorted(int(e.target_id) for e in events) == chosen  # one event per task
        applied = s.scalar(
            select(func.count())
            .select_from(DeletionRecord)
            .where(DeletionRecord.deletion_applied_at.is_not(None))
        )
        assert applied and applied >= 300  # their last system said done: the records applied
        assert count_manual_tasks(s, ManualTaskFilter()) == waiting - 300
    assert newsletter_backlog(many) == waiting - 300


def test_a_bulk_confirmation_needs_a_note_and_an_officer_and_skips_what_is_not_waiting(
    demo: Deployment,
) -> None:
    waiting_tasks(demo)
    with demo.session() as s:
        first, second, *_ = manual_task_ids(s, ManualTaskFilter())
    with demo.session() as s, pytest.raises(InvalidInput, match="needs a note"):
        confirm_tasks(s, [first], actor=DPO, note="  ", execute=True)
    with demo.session() as s, pytest.raises(PermissionDenied):
        confirm_tasks(s, [first], actor=SUPPORT_STAFF, note="Done", execute=True)
    with demo.session() as s:
        confirm_tasks(s, [first], actor=DPO, note="Done", execute=True)
    with demo.session() as s:
        results = confirm_tasks(s, [first, second, 10**9], actor=DPO, note="Both", execute=True)
    by_id = {r.task_id: r for r in results}
    assert by_id[second].confirmed
    assert not by_id[first].confirmed and "already done" in (by_id[first].why_not or "")
    assert not by_id[10**9].confirmed
    with demo.session() as s:
        assert s.get(ErasureTask, first).note == "Done"  # the earlier confirmation stands


def test_manual_tasks_are_filtered_by_system_kind_and_age_and_paged(demo: Deployment) -> None:
    waiting_tasks(demo)
    with demo.session() as s:
        total = count_manual_tasks(s, ManualTaskFilter())
        assert count_manual_tasks(s, ManualTaskFilter(system="newsletter")) == total
        assert count_manual_tasks(s, ManualTaskFilter(system="billing")) == 0
        assert count_manual_tasks(s, ManualTaskFilter(action="access")) == 0
        assert count_manual_tasks(s, ManualTaskFilter(older_than_days=1)) == 0  # made today
        first = manual_tasks(s, ManualTaskFilter(), limit=5)
        second = manual_tasks(s, ManualTaskFilter(), limit=5, offset=5)
    assert total > 10
    assert [t.id for t in first + second] == manual_task_ids_(demo)[:10]


def manual_task_ids_(d: Deployment) -> list[int]:
    with d.session() as s:
        return manual_task_ids(s, ManualTaskFilter())
