"""Property tests of the DSAR commands' inputs: arbitrary tokens never show a traceback.

tests/policy/test_policy_properties.py covers the policy loader and the deletion commands; this is
the same promise for submit-dsar (every kind), review-dsar, extend-dsar, retry-dsar,
deliver-dsar, lift-restriction and the suppression list.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from compliance.dsar.requests import submit
from compliance.store.models import AuditEvent, DsarRequest
from tests.conftest import SUPPORT_STAFF, Backend, Deployment, fill_demo, make_deployment
from tests.reliability.conftest import LONG, policy

COMMANDS = [
    "submit-dsar", "review-dsar", "extend-dsar", "retry-dsar", "deliver-dsar",
    "lift-restriction", "suppression list",
]  # fmt: skip
TOKENS = st.one_of(
    st.sampled_from(
        ["--kind", "access", "erasure", "--subject-id", "--email", "--requested-by",
         "--identity-check", "--approve", "--reject", "--reviewer", "--reason", "--months",
         "--json", "--by", "DSAR-2026-000001", "dsar-2026-000001", "DSAR-0000-000000", "DSAR-",
         "1", "0", "-1", "3", "99999999999999999999", "support@example.com", "dpo@example.com",
         "x@", "@", "' OR 1=1 --", "user1@example.org", "\x00", "é", "",
         "objection", "restriction", "rectification", "portability", "--scope",
         "direct_marketing", "--correct", "users.full_name=Ada", "users.id=2", "--correction",
         "--email"]
    ),
    st.text(max_size=10),
)  # fmt: skip


@pytest.fixture(scope="module")
def dsar_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One deployment with one pending request, shared by every generated command line."""
    base = tmp_path_factory.mktemp("dsar-inputs")
    d = make_deployment(Backend("sqlite", base), base / "deploy")
    fill_demo(d, users_count=20, seed=5)
    with d.session() as s:
        submit(
            s, policy(d), d.app_engine, kind="access", subject_id="1",
            requested_by=SUPPORT_STAFF, execute=True,
        )  # fmt: skip
    yield d
    d.dispose()


@settings(
    max_examples=400 if LONG else 150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(command=st.sampled_from(COMMANDS), args=st.lists(TOKENS, max_size=7))
def test_no_dsar_command_line_ever_shows_a_traceback(
    dsar_deployment: Deployment, command: str, args: list[str]
) -> None:
    # Dry runs only, so one generated line cannot change what the next one sees.
    args = [a for a in args if a != "--execute"]
    with dsar_deployment.session() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    result = dsar_deployment.run(*command.split(), *args)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    assert "Error: unexpected" not in result.output
    if result.exit_code == 2:
        assert result.stderr.strip(), "a refusal always says why"
        assert "Error: " in result.stderr, result.stderr
    with dsar_deployment.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
        assert s.scalar(select(func.count()).select_from(DsarRequest)) == 1
