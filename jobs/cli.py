"""The command-line shell: one click group, one module per command, errors mapped in one place.

Every command that changes data is a dry run unless given ``--execute``. Exit codes:
0 success, 1 when some items failed, a service we depend on is down (``Outage``) or on a
bug (logged with its traceback), 2 on bad input or configuration, with a one-line message
naming what is wrong.
"""

from __future__ import annotations

import getpass
import importlib
import importlib.util
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date
from functools import cached_property, wraps
from typing import Any

import click
from click.core import ParameterSource
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from compliance import failpoints, logs
from compliance.deletion.profiles import check_declared_kinds
from compliance.discovery.coverage import subject_columns_warning
from compliance.errors import ComplianceError, ConfigError, Outage, printable
from compliance.free_text import not_utf8
from compliance.ops.jobruns import close_stale_runs, finish_job_run, start_job_run
from compliance.ops.locks import job_lock
from compliance.policy.database_check import check_against_database, reflect_policy_tables
from compliance.policy.datamap import DataMap, open_system_engines
from compliance.policy.loader import load_policy
from compliance.policy.model import Policy
from compliance.policy.systems import APP_SYSTEM
from compliance.store.engines import (
    check_reachable,
    current_revision,
    session_factory,
    shared_engine,
)
from compliance.store.states import JobRunStatus
from compliance.store.tallies import compact_tallies

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

#: The library names an input by its field; the command line by its flag. Fields not listed
#: here are flags of the same words (``chunk_size`` → ``--chunk-size``).
FLAGS: dict[str, str] = {
    "by": "--by",
    "chunk_size": "--chunk-size",
    "days": "--days",
    "correct": "--correct",
    "email": "--email",
    "exclude": "--exclude",
    "format": "--format",
    "identity_note": "--identity-check",
    "jurisdiction": "--jurisdiction",
    "limit": "--limit",
    "max_batch_size": "--max-batch-size",
    "months": "--months",
    "reason": "--reason",
    "requested_by": "--requested-by",
    "reviewer": "--reviewer",
    "sample": "--sample",
    "scope": "--scope",
    "since": "--since",
    "subject_id": "--subject-id",
    "subject_type": "--subject-type",
    "system": "--system",
    "within_days": "--within-days",
    "workers": "--workers",
}


def flag(field: str) -> str:
    return FLAGS.get(field) or "--" + field.replace("_", "-")


def error_text(exc: ComplianceError) -> str:
    """A library error as the command line says it: its field named by the flag."""
    return exc.render(flag)


class JobFailed(Exception):
    """Some items failed; the summary says which. Exit 1."""


def default_actor() -> str:
    """Cron has no person behind it: name the job's account and host instead."""
    env = os.environ.get("COMPLIANCE_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"job:{user}@{socket.gethostname()}"


@dataclass
class Runtime:
    """What a command needs, opened lazily so `--help` and bad input touch no database."""

    actor: str
    as_json: bool
    _engines: list[Engine] = field(default_factory=list)
    _migrated: bool = False

    @cached_property
    def policy(self) -> Policy:
        return load_policy()

    @cached_property
    def engine(self) -> Engine:
        engine = shared_engine(self.policy.database_url, what="compliance database")
        check_reachable(engine, "compliance database")
        self._engines.append(engine)
        return engine

    @cached_property
    def app_engine(self) -> Engine:
        engine = shared_engine(self.policy.app_database_url, what="application database")
        check_reachable(engine, "application database")
        self._engines.append(engine)
        return engine

    @cached_property
    def datamap(self) -> DataMap:
        """The data map over every SQL system, each checked for reachability and shape."""
        engines = open_system_engines(self.policy, self.app_engine)
        for name, engine in engines.items():
            if engine is not self.app_engine:
                self._engines.append(engine)
                check_reachable(engine, f"system '{name}' database")
        # Reflected once, for the check and the data map alike.
        reflection = reflect_policy_tables(self.policy, self.app_engine, engines)
        warnings = check_against_database(
            self.policy, self.app_engine, engines, reflection=reflection
        )
        reflected = reflection.metadatas[APP_SYSTEM].tables
        for subjects in self.policy.subject_types.values():
            warning = subject_columns_warning(self.policy, reflected.get(subjects.table))
            warnings += [warning] if warning else []
        for warning in warnings:
            logs.log_event("policy.warning", logging.WARNING, message=warning)
        return DataMap(self.policy, self.app_engine, engines, reflection=reflection)

    def session(self) -> Session:
        if not self._migrated:
            if current_revision(self.engine) is None:
                raise ConfigError(
                    "the compliance database has no tables yet; run 'python -m jobs init-db' first"
                )
            with session_factory(self.engine)() as session:
                check_declared_kinds(session, self.policy)
            self._migrated = True  # asked once per run, not for every session
        return session_factory(self.engine)()

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()


def runtime() -> Runtime:
    return click.get_current_context().find_object(Runtime)  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return value


def emit(summary: Any, lines: list[str], *, executed: bool | None = None) -> None:
    """Print the summary: JSON with --json, else the human lines and the dry-run reminder."""
    data = _plain(summary)
    if runtime().as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    for line in lines:
        prefix = "[DRY RUN] " if executed is False else ""
        click.echo(prefix + line)
    if executed is False:
        click.echo("Nothing was changed. Re-run with --execute to apply.")


def _record_start(
    rt: Runtime, name: str, kwargs: Mapping[str, Any], *, dry_run: bool
) -> int | None:
    """The run's job_runs row; None where the compliance database cannot be opened (the
    refusal is still shown, it just has nowhere to be recorded)."""
    try:
        session = rt.session()
    except ComplianceError:
        return None
    with session:
        return start_job_run(session, name, _plain(kwargs), dry_run=dry_run)


def _lock_for(
    rt: Runtime, name: str, bucket: str | None, *, locked: bool
) -> tuple[str, AbstractContextManager[bool]]:
    """The lock a run holds and its name. Only runs that change data take it (dry runs never
    wait or skip); a bucket has a lock of its own, so cron may run buckets side by side."""
    if locked and bucket:
        rt.policy.bucket(bucket)  # an unknown name never names a lock file
    lock_name = f"{name} --bucket {bucket}" if bucket else name
    return lock_name, job_lock(rt.engine, lock_name) if locked else nullcontext(True)


def job(
    name: str, *, mutating: bool = True, concurrent: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Record the run in job_runs (arguments, dry run, status, summary) around the command.

    A run that changes data holds the job's lock (compliance.ops.locks); an overlapping run exits
    0 as "skipped", and a run that gets the lock closes earlier runs left 'running' as crashed.
    ``concurrent=True`` is for jobs whose workers safely run side by side.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            rt = runtime()
            as_json = kwargs.pop("as_json", False)  # popped even when the group's --json is set
            rt.as_json = rt.as_json or as_json
            dry_run = mutating and not kwargs.get("execute", False)
            run_id = _record_start(rt, name, kwargs, dry_run=dry_run)
            status, summary, error = JobRunStatus.SUCCEEDED, None, None
            # The lock is released only after the run's end is recorded (the ExitStack closes
            # last), so a later run that finds the lock free knows a 'running' row is stale.
            with ExitStack() as stack:
                try:
                    locked = mutating and not dry_run and not concurrent
                    bucket = kwargs.get("bucket")
                    lock_name, lock = _lock_for(rt, name, bucket, locked=locked)
                    if not stack.enter_context(lock):
                        status, summary = JobRunStatus.SKIPPED, {"skipped": "already running"}
                        emit(
                            summary, [f"{lock_name} is already running; this run changed nothing."]
                        )
                        return summary
                    if locked and run_id is not None:
                        with rt.session() as session:
                            close_stale_runs(session, name, bucket=bucket, current_run_id=run_id)
                    summary = func(**kwargs)
                    if mutating and not dry_run:
                        # The triggers' deltas of this run, folded while nobody waits on it.
                        with rt.session() as session:
                            compact_tallies(session)
                    return summary
                except (JobFailed, Outage) as exc:
                    status, error = JobRunStatus.FAILED, str(exc)
                    raise
                except ComplianceError as exc:
                    status, error = JobRunStatus.REFUSED, error_text(exc)
                    raise
                except BaseException as exc:
                    status, error = JobRunStatus.CRASHED, f"{type(exc).__name__}: {exc}"
                    raise
                finally:
                    if run_id is not None:
                        with rt.session() as session:
                            finish_job_run(session, run_id, status, _plain(summary), error)

        return wrapper

    return decorate


def job_command(
    name: str,
    *,
    mutating: bool = True,
    concurrent: bool = False,
    group: click.Group | None = None,
) -> Callable[[Callable[..., Any]], click.Command]:
    """Register a command on the group (or a sub-group) with --json and job-run recording."""

    def decorate(func: Callable[..., Any]) -> click.Command:
        parent = group or cli
        full_name = name if parent is cli else f"{parent.name} {name}"
        wrapped = job(full_name, mutating=mutating, concurrent=concurrent)(func)
        wrapped = click.option(
            "--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary."
        )(wrapped)
        return parent.command(name, cls=JobCommand)(wrapped)

    return decorate


def execute_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--execute", is_flag=True, help="Really change data. Without it the command is a dry run."
    )(func)


class JobCommand(click.Command):
    """A command that refuses two flags writing one value (``--accept --reject``), and an
    option that takes a value given twice (``--months 2 --months 1``).

    Click lets the last of such flags win silently; an officer who typed both meant
    something we cannot guess, so the command changes nothing and says so.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        except click.UsageError:
            order = []  # the real parse below reports it
        seen: dict[str | None, click.Parameter] = {}
        for param in order:
            if not isinstance(param, click.Option):
                continue
            if param.name in seen and not (param.multiple or param.is_flag or param.count):
                # ``--months 2 --months 1`` took the last one silently.
                raise click.UsageError(f"{param.opts[0]} is given more than once", ctx)
            first = seen.setdefault(param.name, param)
            if first is not param:
                raise click.UsageError(
                    f"{first.opts[0]} and {param.opts[0]} cannot be given together", ctx
                )
        return super().parse_args(ctx, args)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _not_utf8(args: Sequence[str]) -> str | None:
    """Where the command line holds bytes that are not UTF-8, in the user's words, or None.

    Python hands such bytes over as lone surrogates, which no database, log line or JSON
    summary can encode: refused before anything runs, as any other bad value is.
    """
    for i, arg in enumerate(args):
        if not not_utf8(arg):
            continue
        name, equals, _ = arg.partition("=")
        if arg.startswith("--") and equals and printable(name) == name:
            return name
        before = args[i - 1] if i else ""
        if before.startswith("-") and printable(before) == before:
            return f"the value after {before}"
        return f"argument {i + 1}"
    return None


#: Commands whose module is not named after them (``show-batch`` -> ``jobs/show.py``).
COMMAND_MODULES = {"show-batch": "show", "show-request": "show"}
_COMMAND_NAME = re.compile(r"[a-z][a-z-]{0,63}")


def command_module(name: str) -> str | None:
    """The module under ``jobs/`` that defines command ``name``, if there is one."""
    if not _COMMAND_NAME.fullmatch(name):
        return None
    module = f"jobs.{COMMAND_MODULES.get(name, name.replace('-', '_'))}"
    return module if importlib.util.find_spec(module) is not None else None


class PrivacyDeskGroup(click.Group):
    """The jobs' group: each run imports only the command it runs (and what that needs), so a
    job started by cron does not pay for every other command's libraries; ``--help`` lists
    them all."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module = command_module(cmd_name)
            if module is not None:
                importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from jobs import commands  # noqa: F401 - every command, for the listing

        return super().list_commands(ctx)

    def main(self, args: Sequence[str] | None = None, *more: Any, **options: Any) -> Any:
        # str(): a caller (click's test runner) may pass numbers, which click converts itself.
        where = _not_utf8([str(a) for a in (sys.argv[1:] if args is None else args)])
        if where is not None:
            click.echo(f"Error: {where} is not valid UTF-8 text", err=True)
            sys.exit(EXIT_BAD_INPUT)
        return super().main(args, *more, **options)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Outage as exc:  # nothing to fix here: a later run carries on
            click.echo(f"Error: {error_text(exc)}", err=True)
            ctx.exit(EXIT_FAILED)
        except ComplianceError as exc:
            click.echo(f"Error: {error_text(exc)}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            # One line, like every other refusal, instead of click's usage block.
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except JobFailed as exc:
            click.echo(f"Failed: {exc}", err=True)
            ctx.exit(EXIT_FAILED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            logs.logger.error(
                "job.crashed", exc_info=True, extra={"kv": {"error": type(exc).__name__}}
            )
            click.echo(
                f"Error: unexpected {type(exc).__name__}; the traceback is in the log above",
                err=True,
            )
            ctx.exit(EXIT_FAILED)
        finally:
            rt = ctx.find_object(Runtime)
            if rt is not None:
                rt.close()


@click.group(cls=PrivacyDeskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--actor",
    default=default_actor,
    show_default="$COMPLIANCE_ACTOR or job:USER@HOST",
    help="Who the audit trail names for this run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail too.")
@click.pass_context
def cli(ctx: click.Context, actor: str, as_json: bool, verbose: bool) -> None:
    """Privacy Desk jobs: find what is due, batch it, apply accepted deletions, keep evidence."""
    logs.configure(logging.DEBUG if verbose else logging.INFO)
    ctx.obj = Runtime(actor=_checked_actor(ctx, actor), as_json=as_json)


#: The longest name the audit trail keeps for whoever ran a job (its ``actor`` column).
MAX_ACTOR = 255


def _checked_actor(ctx: click.Context, actor: str) -> str:
    """The run's name in the audit trail, refused like any other bad value.

    It is written into every event and shown on the dashboard and in terminals: a control
    character or bytes that are not UTF-8 (from $COMPLIANCE_ACTOR too) must not get there.
    """
    text = actor.strip()
    # Checked before trimming too: strip() also removes U+2028 and the like, so
    # "ops\u2028" once became "ops" without a word.
    if not text or len(text) > MAX_ACTOR or printable(actor) != actor:
        if ctx.get_parameter_source("actor") is not ParameterSource.DEFAULT:
            where = "--actor"
        elif os.environ.get("COMPLIANCE_ACTOR"):
            where = "COMPLIANCE_ACTOR"
        else:
            where = "the job's account name (set COMPLIANCE_ACTOR)"
        raise click.UsageError(f"{where} must be 1 to {MAX_ACTOR} printable characters", ctx)
    return text


def main() -> None:
    failpoints.install()
    cli.main(prog_name="python -m jobs", standalone_mode=True)
    sys.exit(0)
