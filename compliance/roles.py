"""Who may do what in the dashboard: roles from the policy's ``[roles]``, and who is signed in.

Identity resolution lives here, not in the dashboard, so the order of trust (OIDC login,
then the SSO proxy's header, then the demo picker) is one tested function. Nothing here
imports Streamlit; the dashboard passes in what it read from ``st.user`` and the headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from compliance.emails import EMAIL
from compliance.policy.loader import Policy

COMPLIANCE_OFFICER = "compliance_officer"
SUPPORT = "support"
MANAGER = "manager"
ROLES = (COMPLIANCE_OFFICER, SUPPORT, MANAGER)
ROLE_TITLES = {
    COMPLIANCE_OFFICER: "Compliance officer",
    SUPPORT: "Support",
    MANAGER: "Manager",
}
#: Offered by the demo picker when [roles] grants support to a whole domain only.
DEMO_SUPPORT_USER = "support@example.com"


@dataclass(frozen=True)
class Identity:
    """A signed-in person: the email every action is recorded under, and their roles."""

    email: str
    roles: frozenset[str]
    source: str  # oidc | header | demo

    def has(self, *roles: str) -> bool:
        """True if the person holds any of ``roles``."""
        return bool(self.roles.intersection(roles))


def normalise_email(value: str | None) -> str | None:
    """A lowercase email, or None when the value is not one (a proxy misconfiguration)."""
    value = (value or "").strip().lower()
    return value if EMAIL.match(value) else None


def _matches(email: str, member: str) -> bool:
    member = member.strip().lower()
    if member.startswith("@"):
        return email.endswith(member)
    return email == member


def roles_for(roles: Mapping[str, Iterable[str]], email: str) -> frozenset[str]:
    """Every role whose members name ``email`` itself or its ``@domain``."""
    email = email.strip().lower()
    return frozenset(
        role for role, members in roles.items() if any(_matches(email, m) for m in members)
    )


def demo_users(policy: Policy) -> list[str]:
    """The people the demo picker offers: every email in [roles], plus a support address."""
    emails: list[str] = []
    for role in ROLES:
        for member in policy.roles.get(role, ()):
            if not member.startswith("@") and member not in emails:
                emails.append(member)
    for member in policy.roles.get(SUPPORT, ()):
        if member.startswith("@"):
            candidate = f"support{member}"
            if candidate not in emails:
                emails.append(candidate)
    return emails


def resolve_identity(
    policy: Policy,
    *,
    auth_configured: bool = False,
    oidc_email: str | None = None,
    header_email: str | None = None,
    picked_email: str | None = None,
) -> Identity | None:
    """Who is signed in, trusting OIDC, then the proxy header, then (demo only) the picker.

    With OIDC configured nothing else is trusted: a forged header must not bypass the login.
    Returns None when nobody is signed in; an Identity with no roles means "no access".
    """
    if auth_configured:
        email, source = normalise_email(oidc_email), "oidc"
    elif normalise_email(header_email):
        email, source = normalise_email(header_email), "header"
    elif policy.dashboard.demo_mode:
        email, source = normalise_email(picked_email), "demo"
    else:
        email, source = None, ""
    if email is None:
        return None
    return Identity(email=email, roles=roles_for(policy.roles, email), source=source)
