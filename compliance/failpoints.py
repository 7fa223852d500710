"""Failpoints: let a test kill a job at an exact step, to prove a rerun finishes the work.

``COMPLIANCE_FAILPOINT=name:N`` makes the N-th pass through ``hit("name")`` kill the
process with SIGKILL, as an OOM killer or a node drain would. Unset, it costs one dict
lookup. Besides the named points in the code, ``commit.before`` and ``commit.after`` fire
around every commit of every ORM session, so any job can be killed at its N-th commit
without that job knowing about failpoints.
"""

from __future__ import annotations

import os
import signal
from typing import Any

_counts: dict[str, int] = {}
ENV = "COMPLIANCE_FAILPOINT"


def hit(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """Hook the commit failpoints into every Session, only when one is asked for."""
    spec = os.environ.get(ENV, "")
    if not spec.startswith("commit."):
        return
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    def before(_session: Any) -> None:
        hit("commit.before")

    def after(_session: Any) -> None:
        hit("commit.after")

    event.listen(Session, "before_commit", before)
    event.listen(Session, "after_commit", after)
