"""Who may do what in the dashboard: roles from the policy's ``[roles]``, and who is signed in.

Identity resolution lives here, not in the dashboard, so the order of trust (OIDC login,
then the authenticating proxy's header, then the demo picker) is one tested function.
Nothing here imports Streamlit; the dashboard passes in what it read from ``st.user`` and
the request headers.

A header is only as trustworthy as whoever can send it. Anyone who reaches the dashboard's
port can send ``X-Forwarded-Email``, so the header counts only beside a second header
carrying a secret shared with the proxy (compared in constant time), and only when each
arrives exactly once: a proxy that appends rather than replaces must not let a forged
first value through.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from compliance.emails import EMAIL, check_email
from compliance.errors import ConfigError, PermissionDenied
from compliance.logs import log_event

if TYPE_CHECKING:  # only a type here: the policy loader reads ROLES from this module
    from compliance.policy.model import Policy

COMPLIANCE_OFFICER = "compliance_officer"
SUPPORT = "support"
MANAGER = "manager"
ROLES = (COMPLIANCE_OFFICER, SUPPORT, MANAGER)
#: Not a person's role and never in [roles]: what a host application's API key may do
#: (log requests through the intake API), held only by the Identity made for that key.
API_INTAKE = "api_intake"
ROLE_TITLES = {
    COMPLIANCE_OFFICER: "Compliance officer",
    SUPPORT: "Support",
    MANAGER: "Manager",
    API_INTAKE: "Intake API key",
}
#: Offered by the demo picker when [roles] grants support to a whole domain only.
DEMO_SUPPORT_USER = "support@example.com"
#: Shorter shared secrets are refused: they could be guessed over the network.
MIN_PROXY_SECRET_LENGTH = 32

#: Every value a request carried for one header name (``st.context.headers.get_all``).
HeaderValues = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Identity:
    """A signed-in person: the email every action is recorded under, and their roles.

    A host application's API key acts as ``api:NAME`` with the API_INTAKE role only.
    """

    email: str
    roles: frozenset[str]
    source: str  # oidc | header | demo | cli | api

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


def identify(policy: Policy, email: str, *, source: str = "cli", field: str = "email") -> Identity:
    """The person behind an email named on the command line: their roles from [roles].

    Library decisions take an Identity rather than a bare email, so every caller has
    looked the person up in the policy and the decision can check the role itself.
    """
    email = check_email(email, field)
    return Identity(email=email, roles=roles_for(policy.roles, email), source=source)


def require(actor: Identity, *roles: str, to: str) -> str:
    """The actor's email, or PermissionDenied when they hold none of ``roles``.

    Called first thing by every decision in the library, whatever shell called it: a
    page hidden from someone, or a CLI flag, is not where the rule lives.
    """
    if not isinstance(actor, Identity):  # a bare email would skip the role check
        raise TypeError(f"the acting person must be an Identity, got {type(actor).__name__}")
    if not actor.has(*roles):
        needed = " or ".join(ROLE_TITLES[r].lower() for r in roles if r in ROLES)
        raise PermissionDenied(
            f"{actor.email} may not {to}: that needs the {needed} role ([roles] in the policy)"
        )
    return actor.email


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


def proxy_secret(policy: Policy, env: Mapping[str, str] | None = None) -> str | None:
    """The secret shared with the authenticating proxy, or None: header sign-in is off.

    Read from the environment variable the policy names, never from the policy file, so
    the file can be committed. A secret too short to resist guessing is a ConfigError.
    """
    env = os.environ if env is None else env
    name = policy.dashboard.proxy_secret_env
    secret = env.get(name, "")
    if not secret:
        return None
    if len(secret) < MIN_PROXY_SECRET_LENGTH:
        raise ConfigError(
            f"{name}: the proxy secret must be at least {MIN_PROXY_SECRET_LENGTH} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return secret


def _same_secret(sent: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str; bytes compare in constant time whatever was sent.
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8"))


def header_email(policy: Policy, headers: HeaderValues, secret: str | None) -> str | None:
    """The email the proxy vouches for, or None when the request does not prove it came
    through the proxy: no secret configured, the secret header missing, wrong or repeated,
    or the identity header missing or repeated."""
    settings = policy.dashboard
    names = list(headers(settings.identity_header))
    if not names:
        return None
    sent = list(headers(settings.proxy_secret_header))
    if secret is None:
        refused = "proxy_secret_not_configured"
    elif len(sent) != 1:
        refused = "secret_header_missing" if not sent else "secret_header_repeated"
    elif not _same_secret(sent[0], secret):
        refused = "secret_mismatch"
    elif len(names) != 1:
        refused = "identity_header_repeated"
    else:
        return normalise_email(names[0])
    # No email in the log: the value is unproven and may be anyone's.
    log_event(
        "dashboard_header_refused",
        logging.WARNING,
        reason=refused,
        header=settings.identity_header,
    )
    return None


def demo_refusal(policy: Policy) -> str | None:
    """Why this desk may not offer the demo's user picker, or None when it may.

    Demo mode lets anyone pick who they are, so it runs only where the desk is a laptop
    demo: its compliance database a SQLite file on that machine. A desk on a database
    server is shared by definition, and there ``?as=dpo@…`` would be officer access for
    anyone who can reach the port; the picker is refused instead, whatever the policy says.
    """
    if not policy.dashboard.demo_mode:
        return None
    backend = make_url(policy.database_url).get_backend_name()
    if backend == "sqlite":
        return None
    return (
        "[dashboard] demo_mode = true is refused: demo mode (a user picker, no sign-in) runs "
        f"only on the demo's own SQLite database, and this desk's database is {backend}. "
        "Set demo_mode = false and sign in through OIDC or the authenticating proxy"
    )


def _no_headers(name: str) -> Sequence[str]:
    return ()


def resolve_identity(
    policy: Policy,
    *,
    auth_configured: bool = False,
    oidc_email: str | None = None,
    headers: HeaderValues = _no_headers,
    secret: str | None = None,
    picked_email: str | None = None,
) -> Identity | None:
    """Who is signed in, trusting OIDC, then the proxy's header, then (demo only, on SQLite:
    ``demo_refusal``) the picker.

    With OIDC configured nothing else is trusted: a forged header must not bypass the login.
    The header counts only with the proxy's ``secret`` (see ``header_email``). Returns None
    when nobody is signed in; an Identity with no roles means "no access".
    """
    proxied = None if auth_configured else header_email(policy, headers, secret)
    if auth_configured:
        email, source = normalise_email(oidc_email), "oidc"
    elif proxied:
        email, source = proxied, "header"
    elif demo_refusal(policy) is None and policy.dashboard.demo_mode:
        email, source = normalise_email(picked_email), "demo"
    else:
        email, source = None, ""
    if email is None:
        return None
    return Identity(email=email, roles=roles_for(policy.roles, email), source=source)
