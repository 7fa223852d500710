"""Privacy Desk dashboard: signs the person in, then shows only the pages their roles allow.

Run with ``streamlit run dashboard/app.py``. The policy comes from COMPLIANCE_CONFIG
(default ./compliance.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from compliance.errors import ComplianceError
from compliance.policy.model import Policy
from compliance.roles import (
    ROLE_TITLES,
    Identity,
    demo_refusal,
    demo_users,
    proxy_secret,
    resolve_identity,
)
from dashboard import context, widgets
from dashboard.navigation import LANDING, PAGES, Entry, pages_for, url_path

HERE = Path(__file__).resolve().parent
DEMO_USER_KEY = "demo_user"
DEMO_CHOICE_KEY = "demo_user_choice"
# Demo mode only: the picked user rides along in the URL (?as=…), so a reload, a new tab or
# a shared link keeps the person signed in instead of landing on "Page not found".
DEMO_QUERY = "as"


DEMO_SWITCHED_KEY = "demo_user_switched"


def demo_allowed(policy: Policy) -> bool:
    """Demo mode on, and on a desk it may run on (``compliance.roles.demo_refusal``)."""
    return policy.dashboard.demo_mode and demo_refusal(policy) is None


def _remember_demo_user() -> None:
    st.session_state[DEMO_CHOICE_KEY] = st.session_state[DEMO_USER_KEY]
    st.session_state[DEMO_SWITCHED_KEY] = True


def sign_in(policy: Policy) -> Identity | None:
    """OIDC when [auth] is configured, else the proxy's header, else (demo only) a picker.

    The header counts only beside the proxy's shared secret (compliance.roles.header_email).
    """
    configured = context.auth_configured()
    claimed = st.user.get("email") if configured and st.user.get("is_logged_in") else None
    oidc_email = claimed if isinstance(claimed, str) else None
    person = resolve_identity(
        policy,
        auth_configured=configured,
        oidc_email=oidc_email,
        headers=st.context.headers.get_all,
        secret=proxy_secret(policy),
    )
    if person is None and not configured and demo_allowed(policy):
        # Kept outside the widget by its callback: Streamlit may drop widget values when
        # the first sign-in changes the page list.
        users = demo_users(policy)
        linked = st.query_params.get(DEMO_QUERY)
        if DEMO_CHOICE_KEY not in st.session_state and linked in users:
            st.session_state[DEMO_CHOICE_KEY] = linked
            st.session_state[DEMO_USER_KEY] = linked
        remembered = st.session_state.get(DEMO_CHOICE_KEY)
        st.sidebar.selectbox(
            "Signed in as (demo mode)",
            users,
            index=users.index(remembered) if remembered in users else None,
            placeholder="Choose a demo user",
            key=DEMO_USER_KEY,
            on_change=_remember_demo_user,
        )
        person = resolve_identity(policy, picked_email=st.session_state.get(DEMO_CHOICE_KEY))
    if person is None:
        return None
    if person.source == "demo" and st.query_params.get(DEMO_QUERY) != person.email:
        st.query_params[DEMO_QUERY] = person.email
    st.sidebar.caption(f"**{widgets.plain(person.email)}**")
    roles = ", ".join(ROLE_TITLES[r] for r in sorted(person.roles)) or "no role"
    st.sidebar.caption(roles)
    if person.source == "oidc":
        st.sidebar.button("Log out", on_click=st.logout)
    return person


def signed_out_page() -> None:
    st.title("Privacy Desk")
    if context.auth_configured():
        st.write("Sign in with your company account to review deletions and requests.")
        st.button("Sign in", type="primary", on_click=st.login)
    elif demo_allowed(policy):
        st.info("Demo mode: choose who you are in the sidebar.")
    else:
        if refused := demo_refusal(policy):
            st.error(refused + ".")
        settings = policy.dashboard
        st.error(
            "Nobody is signed in. Configure OIDC ([auth] in .streamlit/secrets.toml) or put the "
            "dashboard behind an authenticating proxy that sends "
            f"{settings.identity_header} together with the shared secret in "
            f"{settings.proxy_secret_header} (the secret from the environment variable "
            f'{settings.proxy_secret_env}). See "Security model" in the README.'
        )


def no_access_page() -> None:
    widgets.no_access(st.session_state.get(context.IDENTITY_KEY))


st.set_page_config(page_title="Privacy Desk", page_icon=":material/shield:", layout="wide")


def stand_ins(
    body: Callable[[], None], *, taken: Container[str] = (), entries: Iterable[Entry] = PAGES
) -> list[StreamlitPage]:
    """``body`` as a hidden page at every page's path not ``taken``.

    Every path stays registered whoever is (or is not) signed in, so a link to a page one
    may not open says why instead of Streamlit's "Page not found".
    """
    return [
        st.Page(body, title=title, url_path=url_path(title), visibility="hidden")
        for path, title, _, _ in entries
        if path not in taken
    ]


def stop_everywhere(message: str) -> None:
    """Show ``message`` on whatever page was asked for (never "Page not found"), then stop."""

    def explain() -> None:
        st.error(widgets.plain(message))

    st.navigation([st.Page(explain, title="Privacy Desk", default=True), *stand_ins(explain)]).run()
    st.stop()


try:
    policy = context.policy()
    context.check_kinds(policy)
except ComplianceError as exc:
    stop_everywhere(f"The dashboard cannot start: {widgets.error_text(exc)}")

try:
    person = sign_in(policy)
except ComplianceError as exc:  # e.g. a proxy secret too short to trust
    stop_everywhere(f"Nobody can sign in: {widgets.error_text(exc)}")
st.session_state[context.IDENTITY_KEY] = person
entries = pages_for(demo_mode=policy.dashboard.demo_mode)
if person is None:
    pages = [st.Page(signed_out_page, title="Sign in", icon=":material/login:", default=True)]
    pages += stand_ins(signed_out_page, entries=entries)
else:
    landing = next(path for role, path in LANDING if role is None or person.has(role))
    allowed = [entry for entry in entries if person.has(*entry[3]) and (HERE / entry[0]).exists()]
    own = {
        path: st.Page(str(HERE / path), title=title, icon=icon, url_path=url_path(title))
        for path, title, icon, _ in allowed
    }
    if own:
        # Streamlit serves its default page at "/" only, so a default landing page would
        # answer its own link (a Slack alert's /deletion_batches) with "Page not found".
        # The default is a hidden page that forwards, keeping the query (?as=, ?bucket=);
        # every real page keeps its path.
        first = own.get(landing) or next(iter(own.values()))
        pages = [
            st.Page(
                lambda: st.switch_page(first, query_params=st.query_params.to_dict()),
                title="Privacy Desk",
                url_path="home",
                default=True,
                visibility="hidden",
            ),
            *own.values(),
        ]
    else:
        pages = [st.Page(no_access_page, title="No access", icon=":material/block:", default=True)]
    pages += stand_ins(no_access_page, taken=own, entries=entries)
current = st.navigation(pages)
switched = st.session_state.pop(DEMO_SWITCHED_KEY, False)
if (
    switched
    and person is not None
    and own
    and current.url_path not in {page.url_path for page in own.values()}
):
    # Another demo user picked on a page they may not open: their own landing page, not
    # "No access" for a page they never asked for.
    st.switch_page(first, query_params={**st.query_params.to_dict(), DEMO_QUERY: person.email})
current.run()
