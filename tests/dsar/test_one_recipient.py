"""Every address the desk mails is exactly one checked mailbox.

``users.email = 'victim@example.org, attacker@evil.example'`` once sent a subject's download
link and code to both. Through ``deliver-dsar`` with a real SMTP server on loopback: nothing
is sent, no delivery is stored, and the refusal is one line naming the recipient.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, text

from compliance.dsar.mailer import RecipientRefused, build_message, send_mail
from compliance.emails import check_mailbox
from compliance.policy.model import SmtpSettings
from compliance.store.models import DsarDelivery
from tests.conftest import DEMO_POLICY, Deployment
from tests.dsar.test_dsar_delivery import finished_access_request
from tests.smtp_server import Inbox
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

HOSTILE = [
    ("victim@example.org, attacker@evil.example", "must be exactly one email address"),
    ("victim@example.org;attacker@evil.example", "must be exactly one email address"),
    ('"victim@example.org" <attacker@evil.example>', "must be exactly one email address"),
    ("Victim <attacker@evil.example>", "must be exactly one email address"),
    ("friends: victim@example.org, attacker@evil.example;", "must be exactly one email"),
    ("victim@example.org\r\nBcc: attacker@evil.example", "holds a line break or control"),
    ("victim@example.org\nattacker@evil.example", "holds a line break or control"),
    ("victim@example.org\u2028attacker@evil.example", "holds a line break or control"),
    ("victim@example.org attacker@evil.example", "must be exactly one email address"),
    ("victim(attacker@evil.example)@example.org", "must be exactly one email address"),
    ("victim", "is not an email address"),
]


@pytest.mark.parametrize(("address", "message"), HOSTILE[:3])
def test_deliver_dsar_to_a_list_of_addresses_sends_nothing_and_says_why(
    demo: Deployment, smtp_inbox: Inbox, address: str, message: str
) -> None:
    demo.write_policy(
        DEMO_POLICY.replace(
            'host = "localhost"\nport = 25', f'host = "127.0.0.1"\nport = {smtp_inbox.port}'
        )
    )
    with demo.app_engine.begin() as conn:  # what a user typed into the product
        conn.execute(text("UPDATE users SET email = :e WHERE id = 21"), {"e": address})
    reference, _ = finished_access_request(demo, "21")
    result = demo.run(
        "deliver-dsar", reference, "--download-url", "https://privacy.example.com/download",
        "--by", "support@example.com", "--execute",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: the recipient address ") and message in line, line
    assert smtp_inbox.messages == [], "nothing reached the SMTP server"
    with demo.session() as s:
        assert s.scalar(select(func.count()).select_from(DsarDelivery)) == 0


@pytest.mark.parametrize(("address", "message"), HOSTILE)
def test_every_hostile_address_is_refused_by_name(address: str, message: str) -> None:
    with pytest.raises(RecipientRefused, match=message):
        build_message("privacy@example.com", address, "Your export", "Hello")


@pytest.mark.parametrize(
    "address", ["ada@example.org", "ada.lovelace+dsar@mail.example.co.uk", " ada@example.org "]
)
def test_a_plain_address_is_one_mailbox(address: str) -> None:
    assert check_mailbox(address, "recipient") == address.strip()
    message = build_message("Privacy Desk <privacy@example.com>", address, "s", "b")
    assert message["To"] == address.strip()


def test_a_message_built_by_hand_reaches_nobody_unless_it_names_one_recipient(
    smtp_inbox: Inbox,
) -> None:
    """send_mail checks what it sends, not only what build_message made."""
    settings = SmtpSettings(host=smtp_inbox.host, port=smtp_inbox.port)
    cc = build_message("privacy@example.com", "ada@example.org", "s", "b")
    cc["Cc"] = "attacker@evil.example"
    two = EmailMessage()
    two["From"] = "privacy@example.com"
    two["To"] = "ada@example.org, attacker@evil.example"
    two.set_content("b")
    for message in (cc, two):
        ok = build_message("privacy@example.com", "ada@example.org", "s", "ok")
        with pytest.raises(RecipientRefused):
            send_mail(settings, [ok, message])
    assert smtp_inbox.messages == [], "one bad message stops the whole batch before sending"
    send_mail(settings, [build_message("privacy@example.com", "ada@example.org", "s", "b")])
    assert [m["To"] for m in smtp_inbox.messages] == ["ada@example.org"]
