"""Email through the company's SMTP server (stdlib smtplib); the password only from the env.

Host, port, sender, username and STARTTLS come from ``[smtp]`` in the policy file; the
password from ``SMTP_PASSWORD``, so no secret is ever written to the file or the logs. With
``[smtp] outbox`` (the demo) each message is written there as an ``.eml`` file instead.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from compliance import clock
from compliance.emails import check_mailbox
from compliance.errors import ComplianceError, InvalidInput, first_line
from compliance.policy.model import SmtpSettings

PASSWORD_ENV = "SMTP_PASSWORD"
#: An outbox file's name: the UTC time it was written, then random hex (write_to_outbox).
_OUTBOX_NAME = re.compile(r"([0-9]{8}T[0-9]{12})Z-[0-9a-f]+\.eml")
_LINK = re.compile(r"https?://[^\s<>\"']+")


class MailError(ComplianceError):
    """The SMTP server could not be reached or refused the message."""


class RecipientRefused(MailError, InvalidInput):
    """An address that is not exactly one mailbox: nothing is sent, to it or to anyone.

    A MailError, so a notice that cannot go out is recorded as failed like any other, and
    an InvalidInput, so a person sees which value is wrong (exit 2 on the command line).
    """


RECIPIENT = "the recipient address"


def _mailbox(value: object, what: str) -> str:
    """One mailbox, or RecipientRefused naming ``what`` it is (no shell's flag names it)."""
    try:
        return check_mailbox(value, what)
    except InvalidInput as exc:
        raise RecipientRefused(exc.render(lambda _field: what)) from None


def build_message(
    sender: str, to: str, subject: str, body: str, *, html: str | None = None
) -> EmailMessage:
    """A plain-text message to exactly one mailbox, with an HTML alternative when ``html`` is given.

    ``to`` must be one plain address (``emails.check_mailbox``): RecipientRefused otherwise.
    """
    message = EmailMessage()
    message["From"] = _one_sender(sender)
    message["To"] = _mailbox(to, RECIPIENT)
    message["Subject"] = subject
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _one_sender(sender: str) -> str:
    """The configured sender: one mailbox, a display name allowed (``Privacy <p@x.org>``)."""
    try:
        parsed = EmailMessage()
        parsed["From"] = sender
        addresses = parsed["From"].addresses
    except (ValueError, IndexError, TypeError):
        addresses = ()
    if len(addresses) != 1:
        raise RecipientRefused("smtp.sender must be exactly one email address")
    _mailbox(addresses[0].addr_spec, "smtp.sender")
    return sender


_RECIPIENT_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")


def check_recipients(message: EmailMessage) -> str:
    """The message's one recipient; RecipientRefused if it would reach anyone else.

    smtplib sends to every address in these headers, so a message built anywhere (not only
    by ``build_message``) is held to one ``To`` naming one checked mailbox.
    """
    found = [(name, header) for name in _RECIPIENT_HEADERS for header in message.get_all(name, [])]
    if len(found) != 1 or found[0][0] != "To":
        raise RecipientRefused("a message goes to exactly one To address, no Cc or Bcc")
    header = found[0][1]
    addresses = getattr(header, "addresses", None)
    if addresses is None or len(addresses) != 1 or len(getattr(header, "groups", ())) != 1:
        raise RecipientRefused(f"{RECIPIENT} must be exactly one email address")
    return _mailbox(addresses[0].addr_spec, RECIPIENT)


def send_mail(
    settings: SmtpSettings,
    messages: list[EmailMessage],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> None:
    """Send the messages over one connection; any failure is one MailError naming the server.

    Nothing is sent unless every message goes to exactly one checked mailbox (RecipientRefused).
    """
    for message in messages:
        check_recipients(message)
    if settings.outbox is not None:
        write_to_outbox(settings.outbox, messages)
        return
    env = os.environ if env is None else env
    password = env.get(PASSWORD_ENV)
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                if not password:
                    raise MailError(f"smtp.username is set but {PASSWORD_ENV} is not")
                smtp.login(settings.username, password)
            for message in messages:
                smtp.send_message(message, to_addrs=[check_recipients(message)])
    except smtplib.SMTPException as exc:
        reason = first_line(exc)
        raise MailError(f"the SMTP server {where} refused the message: {reason}") from None
    except OSError as exc:
        raise MailError(f"the SMTP server {where} is unreachable: {exc.strerror or exc}") from None


def write_to_outbox(outbox: Path, messages: list[EmailMessage]) -> list[Path]:
    """Write each message as ``<UTC time>-<random>.eml``; the name sorts by when it was sent.

    Each file appears whole (written beside, then renamed), so the Outbox page never lists
    half a message.
    """
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        written = []
        for message in messages:
            name = f"{clock.now():%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.eml"
            temporary = outbox / f".{name}.tmp"
            temporary.write_bytes(bytes(message))
            temporary.replace(outbox / name)
            written.append(outbox / name)
    except OSError as exc:
        raise MailError(f"the outbox {outbox} cannot be written: {exc.strerror or exc}") from None
    return written


@dataclass(frozen=True)
class OutboxMessage:
    """One message in the outbox, as the Outbox page lists and shows it."""

    name: str
    written_at: datetime
    to: str
    subject: str
    #: The plain-text part only: an HTML alternative is never read, let alone rendered.
    text: str
    links: tuple[str, ...]


def read_outbox(outbox: Path | None, *, limit: int = 200) -> list[OutboxMessage]:
    """The outbox's newest ``limit`` messages, newest first; none while nothing was written."""
    if outbox is None:
        return []
    try:
        paths = [p for p in outbox.iterdir() if _OUTBOX_NAME.fullmatch(p.name)]
        paths.sort(key=lambda p: p.name, reverse=True)
        return [_outbox_message(p) for p in paths[:limit]]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise MailError(f"the outbox {outbox} cannot be read: {exc.strerror or exc}") from None


def _outbox_message(path: Path) -> OutboxMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the default policy's message class
    body = message.get_body(preferencelist=("plain",))
    text = str(body.get_content()) if body is not None else ""
    stamp = _OUTBOX_NAME.fullmatch(path.name)
    assert stamp is not None
    links = tuple(dict.fromkeys(link.rstrip(".,;:!?)") for link in _LINK.findall(text)))
    return OutboxMessage(
        name=path.name,
        written_at=datetime.strptime(stamp[1], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC),
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        text=text,
        links=links,
    )
