"""The shipped schedule (``deploy/crontab``): which job runs, with which arguments, how often.

The crontab is the one place the schedule is written; the Jobs page reads each job's
expected interval from it, and a test holds ``deploy/kubernetes-cronjobs.yaml`` to it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from compliance.errors import ConfigError

SCHEDULE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "crontab"
#: The crontab's launcher (``J=…/run-job.sh``): every command line starts with it.
LAUNCHER = "$J"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
#: A monthly job may wait this long between runs (the longest month).
MONTH = timedelta(days=31)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_STEP = re.compile(r"\*/([1-9][0-9]*)")
_REDIRECTION = re.compile(r"[0-9]*[<>]")


@dataclass(frozen=True)
class ScheduledRun:
    """One command of the crontab: when (the five time fields), which job, its arguments."""

    cron: str
    job: str
    arguments: tuple[str, ...]


def parse_crontab(text: str, *, name: str = "deploy/crontab") -> list[ScheduledRun]:
    """Every ``$J job …`` command, in the file's order; several per line (``;``) each count.

    Comments, blank lines and variable assignments are skipped; output redirections
    (``>> $LOG 2>&1``) are not arguments. A line that is not a job command is refused.
    """
    runs = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _ASSIGNMENT.match(stripped):
            continue
        fields = stripped.split(None, 5)
        if len(fields) < 6:
            raise ConfigError(f"{name} line {number}: five time fields and a command expected")
        cron = " ".join(fields[:5])
        interval_of(cron, where=f"{name} line {number}")
        for command in fields[5].split(";"):
            words = shlex.split(command)
            if not words:
                continue
            if words[0] != LAUNCHER or len(words) < 2:
                raise ConfigError(f"{name} line {number}: each command starts with {LAUNCHER} JOB")
            end = next((i for i, w in enumerate(words) if _REDIRECTION.match(w)), len(words))
            job, *arguments = words[1:end]
            runs.append(ScheduledRun(cron, job, tuple(arguments)))
    return runs


def interval_of(cron: str, *, where: str = "schedule") -> timedelta:
    """How often five cron time fields run: every N minutes or hours, daily, weekly, monthly.

    Only these regular shapes are understood; anything else (lists, ranges, months) is a
    ConfigError, so a schedule the Jobs page cannot judge is never silently misread.
    """
    parts = cron.split()
    if len(parts) == 5:
        minute, hour, dom, month, dow = parts
        at_minute = minute.isdigit()
        at_time = at_minute and hour.isdigit()
        if month == "*" and dom == "*" and dow == "*":
            if minute == "*" and hour == "*":
                return MINUTE
            if (step := _STEP.fullmatch(minute)) and hour == "*":
                return int(step[1]) * MINUTE
            if at_minute and hour == "*":
                return HOUR
            if at_minute and (step := _STEP.fullmatch(hour)):
                return int(step[1]) * HOUR
            if at_time:
                return DAY
        if month == "*" and dom == "*" and dow.isdigit() and at_time:
            return WEEK
        if month == "*" and dom.isdigit() and dow == "*" and at_time:
            return MONTH
    raise ConfigError(
        f"{where}: {cron!r} is not every N minutes or hours, daily, weekly or monthly"
    )


def expected_intervals(runs: Iterable[ScheduledRun]) -> dict[str, timedelta]:
    """Per job, how often it runs; a job on several lines is expected at its shortest interval."""
    intervals: dict[str, timedelta] = {}
    for run in runs:
        interval = interval_of(run.cron)
        intervals[run.job] = min(interval, intervals.get(run.job, interval))
    return intervals


@cache
def shipped_intervals(path: Path = SCHEDULE_FILE) -> dict[str, timedelta]:
    """Each job's interval in the shipped crontab (read once per process)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"the schedule {path} cannot be read: {exc.strerror or exc}") from None
    return expected_intervals(parse_crontab(text, name=str(path)))
