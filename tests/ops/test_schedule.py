"""The shipped schedule: deploy/crontab is read by the Jobs page, and Kubernetes runs the same."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from compliance.errors import ConfigError
from compliance.ops.schedule import (
    SCHEDULE_FILE,
    ScheduledRun,
    expected_intervals,
    interval_of,
    parse_crontab,
    shipped_intervals,
)
from tests.conftest import ROOT

KUBERNETES_FILE = ROOT / "deploy" / "kubernetes-cronjobs.yaml"


@pytest.mark.parametrize(
    ("cron", "interval"),
    [
        ("*/15 * * * *", timedelta(minutes=15)),
        ("* * * * *", timedelta(minutes=1)),
        ("10 * * * *", timedelta(hours=1)),
        ("0 */6 * * *", timedelta(hours=6)),
        ("30 0 * * *", timedelta(days=1)),
        ("0 4 * * 0", timedelta(days=7)),
        ("0 4 1 * *", timedelta(days=31)),
    ],
)
def test_a_cron_expression_gives_how_often_the_job_runs(cron: str, interval: timedelta) -> None:
    assert interval_of(cron) == interval


@pytest.mark.parametrize(
    "cron", ["0 8 1,15 * *", "0 8 * * 1-5", "0 8 * 6 *", "0 8 * *", "x * * * *"]
)
def test_a_schedule_the_jobs_page_cannot_judge_is_refused_not_misread(cron: str) -> None:
    with pytest.raises(ConfigError, match="is not every N minutes or hours, daily, weekly"):
        interval_of(cron)


def test_a_crontab_line_may_run_several_commands_and_redirections_are_not_arguments() -> None:
    text = """# a comment
CRON_TZ=UTC
J=/srv/privacy-desk/deploy/run-job.sh

*/15 *   *   *   *    $J process-dsar-requests --execute >> $LOG 2>&1
0 4 * * 0 $J purge-compliance-data --bucket a --execute >> $LOG; $J purge-compliance-data --bucket b
0    5   *   *   *    $J verify-audit-log >> $LOG 2>&1
"""
    assert parse_crontab(text) == [
        ScheduledRun("*/15 * * * *", "process-dsar-requests", ("--execute",)),
        ScheduledRun("0 4 * * 0", "purge-compliance-data", ("--bucket", "a", "--execute")),
        ScheduledRun("0 4 * * 0", "purge-compliance-data", ("--bucket", "b")),
        ScheduledRun("0 5 * * *", "verify-audit-log", ()),
    ]


def test_a_job_on_two_lines_is_expected_at_its_shorter_interval() -> None:
    runs = parse_crontab("0 3 * * 0  $J apply-deletions --execute\n0 3 * * *  $J apply-deletions\n")
    assert expected_intervals(runs) == {"apply-deletions": timedelta(days=1)}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 3 * * *", "five time fields and a command expected"),
        ("0 3 * * *  /usr/bin/backup --all", "each command starts with $J JOB"),
        ("0 3 1,15 * *  $J apply-deletions", "line 1: '0 3 1,15 * *' is not every"),
    ],
)
def test_a_line_that_is_not_a_scheduled_job_is_refused_with_its_number(
    line: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_crontab(line)


# ---------------------------------------------------------------- the shipped files


def kubernetes_runs(text: str) -> list[ScheduledRun]:
    """Each CronJob's schedule and command, bucket loops expanded, in the file's order."""
    runs = []
    for document in yaml.safe_load_all(text):
        if not document or document.get("kind") != "CronJob":
            continue
        schedule = document["spec"]["schedule"]
        template = document["spec"]["jobTemplate"]["spec"]["template"]
        (container,) = template["spec"]["containers"]
        command = container["command"]
        label = template["metadata"]["labels"]["job"]
        if command[:3] == ["python", "-m", "jobs"]:
            job, *arguments = command[3:]
            runs.append(ScheduledRun(schedule, job, tuple(arguments)))
        else:
            assert command[:2] == ["/bin/sh", "-c"], command
            loop = re.fullmatch(
                r"rc=0; for b in ([a-z_ ]+); do python -m jobs ([a-z-]+) (.*?) \|\| rc=1; "
                r"done; exit \$rc",
                command[2],
            )
            assert loop, command[2]
            buckets, job, arguments = loop.groups()
            for bucket in buckets.split():
                expanded = shlex.split(arguments.replace('"$b"', bucket))
                runs.append(ScheduledRun(schedule, job, tuple(expanded)))
        assert label == runs[-1].job, f"CronJob labelled {label} runs {runs[-1].job}"
    return runs


def test_kubernetes_runs_the_same_jobs_with_the_same_arguments_on_the_same_schedule() -> None:
    crontab = parse_crontab(SCHEDULE_FILE.read_text())
    kubernetes = kubernetes_runs(KUBERNETES_FILE.read_text())

    assert kubernetes == crontab
    assert len({run.job for run in crontab}) == len(
        re.findall(r"(?m)^kind: CronJob$", KUBERNETES_FILE.read_text())
    )


def test_the_shipped_schedule_runs_every_scheduled_job_at_an_understood_interval() -> None:
    intervals = expected_intervals(parse_crontab(SCHEDULE_FILE.read_text()))
    assert intervals["process-dsar-requests"] == timedelta(minutes=15)
    assert intervals["anchor-audit-log"] == timedelta(hours=1)
    assert intervals["purge-compliance-data"] == timedelta(days=7)
    assert intervals["verify-audit-log"] == timedelta(days=1)


def test_a_missing_schedule_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"the schedule .*crontab cannot be read"):
        shipped_intervals(tmp_path / "crontab")
