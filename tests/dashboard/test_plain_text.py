"""Text people typed is shown as itself: the escaping the dashboard puts around it.

The browser test (tests/browser/test_plain_text_in_chromium.py) checks the rendering; these
check the promise behind it for any text: nothing left that markdown would act on, and
nothing lost once the escapes are read back.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dashboard.widgets import plain

REASON = "[Re-verify your SSO](http://127.0.0.1:9/x) ![t](http://127.0.0.1:9/p.png) <b>b</b>"
PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


def unescaped_markup(shown: str) -> list[str]:
    """Punctuation markdown could act on: any not behind an escaping backslash."""
    found, i = [], 0
    while i < len(shown):
        if shown[i] == "\\" and i + 1 < len(shown) and PUNCTUATION.match(shown[i + 1]):
            i += 2
            continue
        if PUNCTUATION.match(shown[i]):
            found.append(shown[i])
        i += 1
    return found


def read_back(shown: str) -> str:
    """What a reader sees: CommonMark drops the backslash before punctuation."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", shown.replace("\u2060", ""))


def test_a_markdown_link_and_image_lose_their_syntax_and_keep_their_characters() -> None:
    shown = plain(REASON)
    assert "](" not in shown and "![" not in shown and "<b>" not in shown
    assert "http://" not in shown  # autolinks need the scheme in one piece
    assert read_back(shown) == REASON


def test_emails_and_www_addresses_are_not_autolinked() -> None:
    shown = plain("mail dpo@example.com or see www.example.net")
    assert "@example" not in shown.replace("\\", "")
    assert "www." not in shown.replace("\\", "")
    assert read_back(shown) == "mail dpo@example.com or see www.example.net"


@given(st.text())
def test_any_text_is_shown_faithfully_with_no_markup_left(text: str) -> None:
    shown = plain(text)
    assert read_back(shown) == text
    assert unescaped_markup(shown) == []
