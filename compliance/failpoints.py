"""Failpoints: let a test kill a job at an exact step, to prove a rerun finishes the work.

``COMPLIANCE_FAILPOINT=name:N`` makes the N-th pass through ``hit("name")`` kill the
process with SIGKILL, as an OOM killer or a node drain would. Unset, it costs one dict
lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def hit(name: str) -> None:
    spec = os.environ.get("COMPLIANCE_FAILPOINT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
