"""The one clock the library and the jobs read.

Every "now" (``store.models.utcnow``, and through it every default of ``now=``) comes from
``now()``. Tests that simulate weeks of the shipped schedule replace the source with
``use_clock``, as does the demo's set-up to give its sample history the days it shows;
the jobs and pages never do, and no option or environment variable reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


def _system_now() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system_now


def now() -> datetime:
    """The current moment, aware UTC."""
    return _source()


@contextmanager
def use_clock(source: Callable[[], datetime]) -> Iterator[None]:
    """Read ``source`` instead of the system clock until the block ends (tests, demo set-up)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
