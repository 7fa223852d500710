"""Structured logs: one event per line, ``key=value`` context, for grep and log shippers."""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("compliance")


def _format_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields.update(getattr(record, "kv", {}))
        line = " ".join(f"{k}={_format_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_event(event: str, level: int = logging.INFO, **context: Any) -> None:
    logger.log(level, event, extra={"kv": context})


class Progress:
    """Counts work done and logs it with a rate, at most every ``every`` seconds."""

    def __init__(self, event: str, total: int | None = None, every: float = 2.0, **context: Any):
        self.event = event
        self.total = total
        self.every = every
        self.context = context
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, n: int, **extra: Any) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log(**extra)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def log(self, **extra: Any) -> None:
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        fields = dict(self.context, done=self.done, rate_per_s=f"{rate:.0f}", **extra)
        if self.total is not None:
            fields["total"] = self.total
        log_event(self.event, **fields)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("compliance")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
