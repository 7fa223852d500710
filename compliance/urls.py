"""URLs the desk sends people or requests to: absolute http(s), a real host, nothing hidden.

A webhook's URL receives signed requests with a subject's email, and a download URL goes
into the subject's mailbox with a one-time token appended, so each is checked once, here,
before it is used: ``--execute?token=…``, a URL with credentials before the host
(``https://trusted@evil.example``), a control character or a fragment that would swallow
the token are all refused with the reason.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_loopback(host: str) -> bool:
    """``localhost`` (and names under it) or an address in 127.0.0.0/8 or ``::1``."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_problem(host: str) -> str | None:
    if not host:
        return "has no host"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host.rstrip(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return "has a host that is not a DNS name or an IP address"
    return None


def url_problem(value: object, *, https_outside_loopback: bool = False) -> str | None:
    """Why ``value`` is not an absolute http(s) URL with a host, or None when it is one.

    With ``https_outside_loopback``, plain ``http://`` is accepted only to a loopback host.
    """
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    if len(value) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters ({len(value)})"
    if any(ord(ch) <= 32 or 127 <= ord(ch) <= 159 for ch in value):
        return "holds a space or a control character"
    if not value.isascii():
        return "holds characters outside ASCII (write the host as punycode, the rest %-encoded)"
    try:
        parts = urlsplit(value)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return "is not a URL (its host or port cannot be read)"
    if parts.scheme.lower() not in ("http", "https"):
        return "is not an absolute http:// or https:// URL"
    if "@" in parts.netloc:
        return "has a user name or password before the host"
    if "{" in parts.netloc or "}" in parts.netloc:
        return "has a placeholder in its host"
    problem = _host_problem(host)
    if problem:
        return problem
    if port == 0:
        return "has port 0"
    if parts.fragment or value.endswith("#"):
        return "has a #fragment"
    if https_outside_loopback and parts.scheme.lower() == "http" and not is_loopback(host):
        return (
            "must be https:// (plain http:// only to a loopback host such as 127.0.0.1, "
            "or in demo mode)"
        )
    return None
