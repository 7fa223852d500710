"""Failpoints: let a test kill a job at an exact step, to prove a rerun finishes the work.

``COMPLIANCE_FAILPOINT=name:N`` makes the N-th pass through ``hit("name")`` kill the
process with SIGKILL, as an OOM killer or a node drain would. Besides the named points in
the code, ``commit.before`` and ``commit.after`` fire around every commit of every ORM
session, so any job can be killed at its N-th commit without that job knowing about
failpoints.

They are a test hook, so they are inert unless the test suite turns them on: its
``conftest.py`` sets ``PRIVACY_DESK_TEST_SUITE=failpoints`` for itself and the jobs it
starts. In a deployment ``COMPLIANCE_FAILPOINT`` does nothing at all, however it is spelt;
unset or inert, a pass costs one dict lookup.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

_counts: dict[str, int] = {}
ENV = "COMPLIANCE_FAILPOINT"
#: Set (to ``failpoints``) by the test suite only; without it no failpoint ever fires.
SUITE_ENV = "PRIVACY_DESK_TEST_SUITE"
SUITE_VALUE = "failpoints"
_SPEC = re.compile(r"([a-z_.]{1,64}):([0-9]{1,6})")


def _spec() -> tuple[str, int] | None:
    """The armed failpoint and its count, or None (off, outside the suite, or misspelt)."""
    if os.environ.get(SUITE_ENV) != SUITE_VALUE:
        return None
    spec = os.environ.get(ENV) or ""
    if ":" not in spec:
        spec += ":1"
    match = _SPEC.fullmatch(spec)
    if match is None:
        return None
    return match[1], max(1, int(match[2]))


def hit(name: str) -> None:
    if not os.environ.get(ENV):
        return
    armed = _spec()
    if armed is None or armed[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """Hook the commit failpoints into every Session, only when one is asked for."""
    armed = _spec()
    if armed is None or not armed[0].startswith("commit."):
        return
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    def before(_session: Any) -> None:
        hit("commit.before")

    def after(_session: Any) -> None:
        hit("commit.after")

    event.listen(Session, "before_commit", before)
    event.listen(Session, "after_commit", after)
