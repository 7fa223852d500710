"""Roles from the policy's [roles], and whom the dashboard trusts to say who is signed in."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from compliance.errors import ConfigError
from compliance.policy.loader import load_policy
from compliance.policy.model import DashboardSettings, Policy
from compliance.roles import (
    HeaderValues,
    demo_refusal,
    demo_users,
    proxy_secret,
    resolve_identity,
    roles_for,
)
from tests.conftest import DEMO_POLICY, ROOT

SECRET = "s3cret-shared-with-the-proxy-only-0123456789"
SECRET_HEADER = "X-Privacy-Desk-Proxy-Secret"

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
            headers=request({"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: [SECRET]}),
            secret=SECRET,
            picked_email="dpo@example.com",
        )
        is None
    )
    person = resolve_identity(policy, auth_configured=True, oidc_email="ceo@example.com")
    assert person is not None and (person.email, person.source) == ("ceo@example.com", "oidc")


def request(headers: Mapping[str, Sequence[str]]) -> HeaderValues:
    """A request's headers as Streamlit gives them: every value of a name, any case."""
    lowered = {name.lower(): list(values) for name, values in headers.items()}
    return lambda name: lowered.get(name.lower(), [])


def closed(policy: Policy) -> Policy:
    return dataclasses.replace(policy, dashboard=DashboardSettings(demo_mode=False))


def test_the_proxy_header_with_the_shared_secret_wins_over_the_demo_picker(
    policy: Policy,
) -> None:
    headers = request({"X-Forwarded-Email": ["DPO@example.com"], SECRET_HEADER: [SECRET]})
    person = resolve_identity(
        policy, headers=headers, secret=SECRET, picked_email="ceo@example.com"
    )
    assert person is not None
    assert (person.email, person.source) == ("dpo@example.com", "header")
    assert person.has("compliance_officer")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Forwarded-Email": ["dpo@example.com"]}, "secret_header_missing"),
        (
            {"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: ["guess"]},
            "secret_mismatch",
        ),
        (
            {"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: [SECRET[:-1]]},
            "secret_mismatch",
        ),
        (
            {"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: ["sécret ünicode"]},
            "secret_mismatch",
        ),
        (
            {"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: [SECRET, SECRET]},
            "secret_header_repeated",
        ),
        (
            {
                "X-Forwarded-Email": ["dpo@example.com", "support@example.com"],
                SECRET_HEADER: [SECRET],
            },
            "identity_header_repeated",
        ),
    ],
)
def test_a_forged_or_repeated_header_signs_nobody_in(
    policy: Policy,
    headers: dict[str, list[str]],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="compliance"):
        assert resolve_identity(closed(policy), headers=request(headers), secret=SECRET) is None
    assert [r.kv["reason"] for r in caplog.records] == [reason]  # type: ignore[attr-defined]
    assert "dpo@example.com" not in caplog.text


def test_without_a_configured_secret_the_header_is_never_believed(policy: Policy) -> None:
    """Even a request carrying some secret header: there is nothing to compare it with."""
    headers = request({"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: [""]})
    assert resolve_identity(closed(policy), headers=headers, secret=None) is None
    assert proxy_secret(policy, env={}) is None
    assert proxy_secret(policy, env={"COMPLIANCE_PROXY_SECRET": ""}) is None


def test_the_secret_comes_from_the_environment_variable_the_policy_names(
    policy: Policy,
) -> None:
    renamed = dataclasses.replace(
        policy, dashboard=DashboardSettings(proxy_secret_env="SSO_SHARED_SECRET")
    )
    assert proxy_secret(renamed, env={"SSO_SHARED_SECRET": SECRET}) == SECRET
    assert proxy_secret(renamed, env={"COMPLIANCE_PROXY_SECRET": SECRET}) is None


def test_a_guessable_proxy_secret_is_a_configuration_error(policy: Policy) -> None:
    with pytest.raises(ConfigError, match=r"COMPLIANCE_PROXY_SECRET: .* at least 32"):
        proxy_secret(policy, env={"COMPLIANCE_PROXY_SECRET": "hunter2"})


def test_the_header_names_come_from_the_policy(policy: Policy) -> None:
    custom = dataclasses.replace(
        policy,
        dashboard=DashboardSettings(identity_header="X-Auth-Email", proxy_secret_header="X-Gate"),
    )
    proven = request({"X-Auth-Email": ["ceo@example.com"], "X-Gate": [SECRET]})
    person = resolve_identity(custom, headers=proven, secret=SECRET)
    assert person is not None and person.email == "ceo@example.com"
    default_names = request({"X-Forwarded-Email": ["ceo@example.com"], SECRET_HEADER: [SECRET]})
    assert resolve_identity(custom, headers=default_names, secret=SECRET) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('proxy_secret_header = "X-Forwarded-Email"', "must differ from dashboard.identity_header"),
        ('proxy_secret_header = "X Secret"', "is not an HTTP header name"),
        ('proxy_secret_env = "MY-SECRET"', "is not an environment variable name"),
        ("proxy_secret_env = 3", "expected str"),
    ],
)
def test_bad_proxy_settings_are_refused_when_the_policy_loads(
    tmp_path: Path, line: str, message: str
) -> None:
    body = DEMO_POLICY.replace('proxy_secret_env = "COMPLIANCE_PROXY_SECRET"\n', "").replace(
        'proxy_secret_header = "X-Privacy-Desk-Proxy-Secret"\n', line + "\n"
    )
    path = tmp_path / "compliance.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_policy(path, env={})


def test_the_shipped_streamlit_config_listens_on_loopback_only() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_the_picker_counts_only_in_demo_mode(policy: Policy) -> None:
    assert resolve_identity(policy, picked_email="dpo@example.com") is not None
    closed = dataclasses.replace(policy, dashboard=DashboardSettings(demo_mode=False))
    assert resolve_identity(closed, picked_email="dpo@example.com") is None


def test_a_header_that_is_not_an_email_is_ignored(policy: Policy) -> None:
    headers = request({"X-Forwarded-Email": ["admin"], SECRET_HEADER: [SECRET]})
    assert resolve_identity(closed(policy), headers=headers, secret=SECRET) is None


@pytest.mark.parametrize(
    ("database_url", "picker"),
    [
        ("sqlite:///var/compliance.db", True),
        ("postgresql+psycopg2://desk@db.internal/compliance", False),
        ("postgresql://127.0.0.1/test", False),
    ],
)
def test_the_demo_picker_signs_someone_in_only_on_a_sqlite_desk(
    policy: Policy, database_url: str, picker: bool
) -> None:
    """Demo mode on a database server would make ``?as=dpo@…`` officer access for anyone."""
    assert policy.dashboard.demo_mode
    desk = dataclasses.replace(policy, database_url=database_url)
    person = resolve_identity(desk, picked_email="dpo@example.com")
    refusal = demo_refusal(desk)
    if picker:
        assert person is not None and person.source == "demo" and refusal is None
        return
    assert person is None
    assert refusal is not None and refusal.startswith("[dashboard] demo_mode = true is refused")
    assert "postgresql" in refusal and "SQLite" in refusal
    # The proxy's header with its secret still signs people in there.
    proxied = resolve_identity(
        desk,
        headers=request({"X-Forwarded-Email": ["dpo@example.com"], SECRET_HEADER: [SECRET]}),
        secret=SECRET,
        picked_email="ceo@example.com",
    )
    assert proxied is not None and (proxied.email, proxied.source) == ("dpo@example.com", "header")
