"""The demo's Outbox page: what was "sent" without a mail server, shown as plain text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st

from compliance.dsar.delivery import deliver_export
from compliance.dsar.mailer import build_message, write_to_outbox
from tests.conftest import SUPPORT_STAFF, Deployment
from tests.dashboard.conftest import MANAGER, OFFICER, SUPPORT, OpenApp, texts
from tests.dashboard.test_proxy_sign_in import SECRET, SECRET_HEADER, OpenWithHeaders
from tests.dashboard.test_proxy_sign_in import open_with_headers as open_with_headers  # fixture
from tests.dsar.test_dsar_delivery import URL, finished_access_request

PAGE = "views/outbox.py"


@pytest.fixture
def delivered(queue: Deployment) -> Iterator[str]:
    """An access request whose download link and code went to the demo outbox."""
    reference, _ = finished_access_request(queue)
    with queue.session() as s:
        new = deliver_export(s, queue.policy(), reference, actor=SUPPORT_STAFF,
                             download_url=URL, execute=True)  # fmt: skip
    yield new.link
    st.cache_data.clear()


def test_a_delivery_is_listed_newest_first_and_its_link_can_be_copied(
    delivered: str, open_app: OpenApp
) -> None:
    at = open_app(SUPPORT, PAGE)

    assert not at.exception, at.exception
    assert texts(at, "title") == ["Outbox"]
    listed = at.dataframe[0].value
    assert list(listed.columns) == ["written_at", "to", "subject"]
    assert len(listed) == 2  # the link, then the code in a separate email
    assert listed["subject"].iloc[1].startswith("Your personal data export (DSAR-")
    assert listed["written_at"].iloc[0] >= listed["written_at"].iloc[1]
    at.selectbox(key="outbox_message").set_value(1).run()
    body = "\n".join(str(t.value) for t in at.text)
    assert "Download it here within" in body and delivered in body
    assert [c.value for c in at.code] == [delivered]


def test_typed_text_in_a_message_is_shown_as_itself(queue: Deployment, open_app: OpenApp) -> None:
    hostile = "**Act now** <b>bold</b> [Re-verify](http://evil.example/x) ![t](http://evil/p.png)"
    policy = queue.policy()
    assert policy.smtp.outbox is not None
    write_to_outbox(
        policy.smtp.outbox,
        [build_message("privacy@example.com", "a@example.org", hostile, hostile,
                       html=f"<p>{hostile}</p>")],
    )  # fmt: skip

    at = open_app(MANAGER, PAGE)

    assert not at.exception, at.exception
    # To, subject and the plain-text part, exactly as typed; the HTML part is never read.
    assert [str(t.value).rstrip("\n") for t in at.text] == ["a@example.org", hostile, hostile]
    assert not any("evil" in str(m.value) for m in at.markdown)
    assert [c.value for c in at.code] == ["http://evil.example/x", "http://evil/p.png"]


def test_an_empty_outbox_says_how_to_fill_it(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(OFFICER, PAGE)

    assert not at.exception, at.exception
    assert texts(at, "info")[0].startswith("Nothing was written yet.")
    assert not at.dataframe


def test_every_demo_role_may_open_the_outbox(queue: Deployment, open_app: OpenApp) -> None:
    for email in (OFFICER, SUPPORT, MANAGER):
        at = open_app(email, PAGE)
        assert texts(at, "title") == ["Outbox"], email


def test_outside_demo_mode_there_is_no_outbox_page(open_with_headers: OpenWithHeaders) -> None:
    at = open_with_headers([("X-Forwarded-Email", OFFICER), (SECRET_HEADER, SECRET)])
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Deletion batches"]

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)
