"""Roles from the policy's [roles], and whom the dashboard trusts to say who is signed in."""

from __future__ import annotations

import dataclasses

import pytest

from compliance.policy.loader import DashboardSettings, Policy, load_policy
from compliance.roles import demo_users, resolve_identity, roles_for
from tests.conftest import ROOT

ROLES = {
    "compliance_officer": ("dpo@example.com",),
    "support": ("@example.com",),
    "manager": ("ceo@example.com",),
}


@pytest.fixture
def policy() -> Policy:
    return load_policy(ROOT / "compliance.toml", env={})


def test_a_domain_grants_the_role_to_everyone_there_and_nobody_else() -> None:
    assert roles_for(ROLES, "Anna@Example.com") == {"support"}
    assert roles_for(ROLES, "anna@sub.example.com") == frozenset()
    assert roles_for(ROLES, "anna@example.com.evil.org") == frozenset()


def test_a_person_may_hold_several_roles() -> None:
    assert roles_for(ROLES, "dpo@example.com") == {"compliance_officer", "support"}


def test_the_demo_picker_offers_every_named_person_and_a_support_address(
    policy: Policy,
) -> None:
    assert demo_users(policy) == ["dpo@example.com", "support@example.com", "ceo@example.com"]


def readme_pages_per_role() -> dict[str, set[str]]:
    """The README's table of roles and the pages each sees, as a reader finds it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| role (`[roles]`"))
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        role, pages = (cell.strip() for cell in line.strip("|").split("|"))
        table[role] = {p.strip() for p in pages.split("(")[0].split(",")}
    return table


def test_each_demo_user_holds_one_role_and_sees_exactly_the_pages_the_readme_lists(
    policy: Policy,
) -> None:
    from compliance.roles import ROLE_TITLES
    from dashboard.navigation import PAGES

    readme = readme_pages_per_role()
    seen = {}
    for email in demo_users(policy):
        roles = roles_for(policy.roles, email)
        assert len(roles) == 1, f"{email} holds {sorted(roles)}"
        (role,) = roles
        pages = {title for _, title, _, allowed in PAGES if role in allowed}
        seen[ROLE_TITLES[role].lower()] = pages
    assert seen == readme


def test_with_oidc_configured_a_forged_header_or_pick_signs_nobody_in(policy: Policy) -> None:
    assert (
        resolve_identity(
            policy,
            auth_configured=True,
            header_email="dpo@example.com",
            picked_email="dpo@example.com",
        )
        is None
    )
    person = resolve_identity(policy, auth_configured=True, oidc_email="ceo@example.com")
    assert person is not None and (person.email, person.source) == ("ceo@example.com", "oidc")


def test_the_proxy_header_wins_over_the_demo_picker(policy: Policy) -> None:
    person = resolve_identity(
        policy, header_email="DPO@example.com", picked_email="ceo@example.com"
    )
    assert person is not None
    assert (person.email, person.source) == ("dpo@example.com", "header")
    assert person.has("compliance_officer")


def test_the_picker_counts_only_in_demo_mode(policy: Policy) -> None:
    assert resolve_identity(policy, picked_email="dpo@example.com") is not None
    closed = dataclasses.replace(policy, dashboard=DashboardSettings(demo_mode=False))
    assert resolve_identity(closed, picked_email="dpo@example.com") is None


def test_a_header_that_is_not_an_email_is_ignored(policy: Policy) -> None:
    closed = dataclasses.replace(policy, dashboard=DashboardSettings(demo_mode=False))
    assert resolve_identity(closed, header_email="admin") is None
