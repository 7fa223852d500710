"""A job imports only its own command: cron's runs start without every other command's
libraries, and every command is still found by name and listed by --help."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from jobs import commands  # noqa: F401 - every command registered, as --help lists them
from jobs.cli import cli, command_module
from tests.conftest import ROOT


def test_every_command_is_found_in_the_module_that_defines_it() -> None:
    for name, command in cli.commands.items():
        assert command.callback is not None
        assert command_module(name) == command.callback.__module__, name
    assert command_module("no-such-command") is None
    assert command_module("../etc") is None and command_module("Apply-Deletions") is None


def test_a_job_run_imports_its_own_command_and_not_the_others() -> None:
    script = (
        "import sys; from jobs.cli import cli\n"
        "try:\n    cli.main(['verify-audit-log', '--help'], prog_name='python -m jobs')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('jobs.')), 'pandas' in sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "Usage: python -m jobs verify-audit-log" in ran.stdout
    modules, pandas = ran.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    helpers = {"'jobs.cli'", "'jobs.params'"}  # the group and the shared option types
    assert set(modules.strip("[]").split(", ")) - helpers == {"'jobs.verify_audit_log'"}
    assert pandas == "False"


@pytest.mark.parametrize("name", ["no-such-command", "../etc", "APPLY-DELETIONS"])
def test_an_unknown_command_is_one_line_and_exit_2(name: str) -> None:
    result = CliRunner().invoke(cli, [name])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_help_lists_every_command() -> None:
    listed = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"  {name} " in listed for name in cli.commands), listed
    assert isinstance(cli, click.Group)
