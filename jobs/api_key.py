import click

from compliance.dsar.api_keys import create_api_key, list_api_keys, revoke_api_key
from compliance.roles import identify
from jobs.cli import cli, emit, execute_option, job_command, runtime


@cli.group("api-key")
def api_key() -> None:
    """Keys for the intake API (api/): create one per host application, revoke when done."""


@job_command("create", group=api_key)
@click.option("--name", required=True, help="Who uses the key, e.g. the host application.")
@click.option("--by", "by", required=True, metavar="EMAIL", help="The compliance officer's email.")
@execute_option
def create(name: str, by: str, execute: bool) -> object:
    """Issue a key and print it once; only its hash is stored, so keep it safe now."""
    rt = runtime()
    with rt.session() as session:
        officer = identify(rt.policy, by, field="by")
        new = create_api_key(session, name, actor=officer, execute=execute)
    summary = {"name": new.name, "key_prefix": new.key_prefix, "executed": new.executed}
    if not execute:
        emit(summary, [f"Would create API key '{new.name}'"], executed=False)
        return summary
    # The key goes to stdout once; the job run records only its prefix.
    emit(
        {**summary, "key": new.key},
        [
            f"Created API key '{new.name}'. It is shown only this once:",
            str(new.key),
            "Send it as 'Authorization: Bearer <key>'; revoke with 'api-key revoke NAME'.",
        ],
    )
    return summary


@job_command("revoke", group=api_key)
@click.argument("name")
@click.option("--by", "by", required=True, metavar="EMAIL", help="The compliance officer's email.")
@execute_option
def revoke(name: str, by: str, execute: bool) -> object:
    """Refuse NAME's key from now on (it stays listed as revoked)."""
    rt = runtime()
    with rt.session() as session:
        officer = identify(rt.policy, by, field="by")
        info = revoke_api_key(session, name, actor=officer, execute=execute)
    summary = {"name": info.name, "key_prefix": info.key_prefix, "revoked_at": info.revoked_at}
    verb = "Revoked" if execute else "Would revoke"
    emit(summary, [f"{verb} API key '{info.name}' ({info.key_prefix}…)"], executed=execute)
    return summary


@job_command("list", group=api_key, mutating=False)
def list_keys() -> object:
    """Every key: name, prefix, who created it, when it was last used, whether revoked."""
    rt = runtime()
    with rt.session() as session:
        keys = list_api_keys(session)
    lines = [
        f"{k.name:<24} {k.key_prefix}…  created {k.created_at:%Y-%m-%d} by {k.created_by}  "
        + (f"REVOKED {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active")
        + (f"  last used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "")
        for k in keys
    ] or ["No API keys."]
    summary = {"keys": keys}
    emit(summary, lines)
    return summary
