"""Sign-in behind an authenticating proxy, driven through AppTest with real request headers.

AppTest has no browser connection, so the headers are handed to Streamlit the way its
websocket handler does (a client context listing every header line, repeats included);
the app reads them through ``st.context.headers`` exactly as in production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
import streamlit.runtime.context as st_context
from streamlit.testing.v1 import AppTest

from tests.conftest import DEMO_POLICY, Deployment
from tests.dashboard.conftest import APP, MANAGER, OFFICER, demo_picker_offered, texts

SECRET = "s3cret-shared-with-the-proxy-only-0123456789"
SECRET_HEADER = "X-Privacy-Desk-Proxy-Secret"
CLOSED_POLICY = DEMO_POLICY.replace("demo_mode = true", "demo_mode = false")

OpenWithHeaders = Callable[[list[tuple[str, str]]], AppTest]


@pytest.fixture
def open_with_headers(
    queue: Deployment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenWithHeaders]:
    """Open the dashboard (demo mode off, proxy secret set) for a request with these headers."""
    queue.write_policy(CLOSED_POLICY)
    queue.use_env(monkeypatch)
    monkeypatch.setenv("COMPLIANCE_PROXY_SECRET", SECRET)

    def open_app(headers: list[tuple[str, str]]) -> AppTest:
        client = SimpleNamespace(headers=headers, cookies={}, remote_ip="127.0.0.1")
        monkeypatch.setattr(st_context, "_get_client_context", lambda: client)
        return AppTest.from_file(str(APP), default_timeout=60).run()

    yield open_app
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def signed_out(at: AppTest) -> bool:
    """The sign-in page and nothing else: no data, no decision, nobody named."""
    return (
        texts(at, "title") == ["Privacy Desk"]
        and any("Nobody is signed in" in t for t in texts(at, "error"))
        and not at.dataframe
        and not at.button
        and not any("@" in t for t in texts(at, "caption"))
    )


def test_the_proxy_header_with_the_shared_secret_signs_the_officer_in(
    open_with_headers: OpenWithHeaders,
) -> None:
    at = open_with_headers([("X-Forwarded-Email", OFFICER), (SECRET_HEADER, SECRET)])
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Deletion batches"]
    assert f"**{OFFICER}**" in texts(at, "caption")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("X-Forwarded-Email", OFFICER)], id="no secret header"),
        pytest.param(
            [("X-Forwarded-Email", OFFICER), (SECRET_HEADER, "guessed")], id="wrong secret"
        ),
        pytest.param(
            [
                ("X-Forwarded-Email", OFFICER),
                ("X-Forwarded-Email", MANAGER),
                (SECRET_HEADER, SECRET),
            ],
            id="identity header repeated",
        ),
        pytest.param(
            [("X-Forwarded-Email", OFFICER), (SECRET_HEADER, "guessed"), (SECRET_HEADER, SECRET)],
            id="secret header repeated",
        ),
    ],
)
def test_a_forged_header_signs_nobody_in(
    open_with_headers: OpenWithHeaders, headers: list[tuple[str, str]]
) -> None:
    at = open_with_headers(headers)
    assert not at.exception, at.exception
    assert signed_out(at), (texts(at, "title"), texts(at, "caption"))


def test_without_a_proxy_secret_in_the_environment_no_header_is_believed(
    open_with_headers: OpenWithHeaders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPLIANCE_PROXY_SECRET")
    at = open_with_headers([("X-Forwarded-Email", OFFICER), (SECRET_HEADER, "")])
    assert signed_out(at)


def test_a_guessable_proxy_secret_stops_every_sign_in_with_a_clear_error(
    open_with_headers: OpenWithHeaders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPLIANCE_PROXY_SECRET", "hunter2")
    at = open_with_headers([("X-Forwarded-Email", OFFICER), (SECRET_HEADER, "hunter2")])
    assert not at.exception, at.exception
    [error] = texts(at, "error")
    assert error.startswith("Nobody can sign in: COMPLIANCE_PROXY_SECRET")
    assert not at.dataframe and not at.button


def test_in_demo_mode_a_forged_header_only_gets_the_picker(
    queue: Deployment, open_with_headers: OpenWithHeaders
) -> None:
    queue.write_policy(DEMO_POLICY)
    at = open_with_headers([("X-Forwarded-Email", OFFICER)])
    assert texts(at, "title") == ["Privacy Desk"]
    # The picker on the demo's SQLite; on PostgreSQL not even that (roles.demo_refusal).
    picker = ["demo_user"] if demo_picker_offered(queue) else []
    assert [s.key for s in at.selectbox] == picker
    assert not at.dataframe
