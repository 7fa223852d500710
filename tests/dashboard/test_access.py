"""Who sees which page: roles from the policy's [roles], a clear "no access" for the rest."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import Deployment
from tests.dashboard.conftest import (
    APP,
    MANAGER,
    OFFICER,
    SUPPORT,
    OpenApp,
    demo_picker_offered,
    texts,
)


def page_titles(at: AppTest) -> list[str]:
    return texts(at, "title")


def test_nobody_signed_in_is_asked_to_choose_a_demo_user_on_the_demos_sqlite_only(
    queue: Deployment, open_app: OpenApp
) -> None:
    """On PostgreSQL (a shared server) the same demo policy offers no picker, and a demo
    link's ``?as=`` signs nobody in: there it would be officer access for anyone."""
    at = open_app(None)
    assert page_titles(at) == ["Privacy Desk"]
    assert not at.dataframe
    if demo_picker_offered(queue):
        assert any("choose who you are" in t for t in texts(at, "info"))
        return
    assert not [s for s in at.selectbox if s.key == "demo_user"]
    (refusal,) = texts(at, "error")[:1]
    assert refusal.startswith("[dashboard] demo_mode = true is refused"), refusal
    assert "this desk's database is postgresql" in refusal
    linked = AppTest.from_file(str(APP), default_timeout=60)
    linked.query_params["as"] = OFFICER
    linked.run()
    assert page_titles(linked) == ["Privacy Desk"] and not linked.dataframe
    assert not any(OFFICER in t for t in texts(linked, "caption"))


def signed_in_with_oidc(at: AppTest, email: str) -> AppTest:
    """As after Streamlit's OIDC login: [auth] in secrets, and st.user carrying the email."""
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1/oauth2callback"}
    at.user = {"is_logged_in": True, "email": email}
    return at.run()


def test_someone_without_a_role_sees_no_access_and_nothing_else(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = signed_in_with_oidc(open_app(None), "visitor@partner.org")
    assert page_titles(at) == ["No access"]
    assert any("visitor@partner.org" in t for t in texts(at, "error"))
    assert not at.dataframe
    assert [b.label for b in at.button] == ["Log out"]


def test_with_oidc_the_signed_in_email_decides_the_role_and_no_picker_is_offered(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = signed_in_with_oidc(open_app(None), "CEO@example.com")
    assert page_titles(at) == ["Progress"]
    assert not [s for s in at.selectbox if s.key == "demo_user"]
    assert [b.label for b in at.button] == ["Log out"]


def test_with_oidc_and_nobody_logged_in_the_page_offers_sign_in(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(None)
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1/oauth2callback"}
    at.user = {"is_logged_in": False}
    at.run()
    assert page_titles(at) == ["Privacy Desk"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe


@pytest.mark.parametrize(
    ("email", "first_page"),
    [(OFFICER, "Deletion batches"), (SUPPORT, "DSAR requests"), (MANAGER, "Progress")],
)
def test_each_role_lands_on_its_own_first_page(
    queue: Deployment, open_app: OpenApp, email: str, first_page: str
) -> None:
    at = open_app(email)
    assert not at.exception, at.exception
    assert page_titles(at) == [first_page]


def test_support_cannot_open_the_deletion_batches_page(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(SUPPORT)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/batches.py")


def test_a_manager_reads_progress_but_cannot_decide_anything(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(MANAGER)
    assert not at.exception, at.exception
    buckets = at.dataframe[0].value.set_index("bucket")
    assert buckets.loc["closed_accounts", "batches_pending"] == 9
    assert buckets.loc["stale_support_tickets", "batches_accepted"] == 1
    assert buckets.loc["stale_support_tickets", "applied"] == 14
    assert [b.label for b in at.button] == []
    with pytest.raises(ValueError):
        at.switch_page("views/batches.py")
