"""The data subject's download page shows nothing without a valid link and the right code."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from compliance.dsar.delivery import NewDelivery, create_delivery
from tests.conftest import ROOT, SUPPORT_STAFF, Deployment
from tests.dsar.test_dsar_delivery import finished_access_request

PAGE = str(ROOT / "dashboard" / "download.py")


@pytest.fixture
def link(demo: Deployment, monkeypatch: pytest.MonkeyPatch) -> NewDelivery:
    for key, value in demo.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    reference, _ = finished_access_request(demo)
    with demo.session() as s:
        new = create_delivery(
            s, reference, actor=SUPPORT_STAFF, download_url="http://x", policy=demo.policy()
        )
        s.commit()
    return new


def page(token: str | None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    if token is not None:
        at.query_params["token"] = token
    return at.run()


def test_without_a_token_the_page_asks_for_the_link_and_shows_no_field(link: NewDelivery) -> None:
    at = page(None)
    assert not at.text_input and not at.get("download_button")
    assert "link from our email" in at.info[0].value


def test_a_forged_token_shows_an_error_and_no_field(link: NewDelivery) -> None:
    at = page("forged-" + link.token[7:])
    assert not at.text_input and not at.get("download_button")
    assert "not valid" in at.error[0].value


def test_a_wrong_code_shows_no_download_and_the_right_code_shows_it_once(
    link: NewDelivery,
) -> None:
    at = page(link.token)
    assert len(at.text_input) == 1 and not at.get("download_button")
    at.text_input[0].input("000000" if link.otp != "000000" else "111111")
    at.button[0].click().run()
    assert "wrong code" in at.error[0].value and not at.get("download_button")

    at.text_input[0].input(link.otp)
    at.button[0].click().run()
    assert not at.error and len(at.get("download_button")) == 1

    again = page(link.token)  # a new visitor with the same link
    assert "already used" in again.error[0].value and not again.text_input
