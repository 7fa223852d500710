"""A local SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"

    def bodies(self) -> list[str]:
        return [m.get_content() for m in self.messages]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_inbox() -> Iterator[Inbox]:
    inbox = Inbox("127.0.0.1", free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def mailing_to(inbox: Inbox, policy_text: str, *, auto_deliver: bool = True) -> str:
    """The policy with its [smtp] pointed at ``inbox`` and process-dsar-requests mailing links."""
    from tests.conftest import with_mail_server

    text = with_mail_server(policy_text, inbox.port, inbox.host)
    setting = "true" if auto_deliver else "false"
    text = text.replace("auto_deliver = false", f"auto_deliver = {setting}", 1)
    assert f"port = {inbox.port}" in text and f"auto_deliver = {setting}" in text
    return text
