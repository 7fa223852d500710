import click

from compliance.dsar.objections import SCOPES
from compliance.dsar.rectification import Correction, parse_correction
from compliance.dsar.requests import KINDS, Submission, outcome_line, submit_each_kind
from compliance.roles import identify
from jobs.cli import emit, execute_option, job_command, runtime
from jobs.params import SUBJECT_ID, subject_type_option


@job_command("submit-dsar")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What is asked.")
@click.option(
    "--subject-id", type=SUBJECT_ID, help="The subject's key in the application database."
)
@click.option("--email", help="Or the subject's email, looked up through [subjects].")
@subject_type_option
@click.option(
    "--jurisdiction",
    metavar="NAME",
    help="The law it falls under ([jurisdictions]); default: by the subject's country, "
    "else [dsar] default_jurisdiction.",
)
@click.option("--requested-by", required=True, help="Email of the staff member logging it.")
@click.option(
    "--identity-method",
    help="How the requester's identity was checked: one of [dsar] identity_methods.",
)
@click.option("--identity-check", help="A note on that check (who saw what).")
@click.option("--scope", help=f"An objection's scope: one of {', '.join(SCOPES)}.")
@click.option(
    "--correct",
    multiple=True,
    metavar="TABLE.COLUMN=VALUE",
    help="A rectification's new value for a column of the data map (repeatable).",
)
@click.option(
    "--correction", multiple=True, help="A rectification's correction in words (repeatable)."
)
@execute_option
def submit_dsar(
    kind: str,
    subject_id: str | None,
    email: str | None,
    subject_type: str | None,
    jurisdiction: str | None,
    requested_by: str,
    identity_method: str | None,
    identity_check: str | None,
    scope: str | None,
    correct: tuple[str, ...],
    correction: tuple[str, ...],
    execute: bool,
) -> object:
    """Log a data subject's request (any kind the desk handles); due as its jurisdiction says
    (GDPR: one calendar month).

    A second open request of the same kind for the same subject returns the first one.
    Where the policy declares several kinds of data subject, an --email without
    --subject-type is looked up in each: one request per kind the person is found in.
    The identity check is optional here, for scripted back-office use; the approver then
    sees "identity check not recorded". An objection to direct marketing logged with an
    identity check is accepted at once: it cannot be refused (GDPR Art. 21(3)).
    """
    if (subject_id is None) == (email is None):
        raise click.UsageError("give exactly one of --subject-id or --email")
    rt = runtime()
    with rt.session() as session:
        results = submit_each_kind(
            session,
            rt.policy,
            rt.app_engine,
            kind=kind,
            subject_id=subject_id,
            email=email,
            subject_type=subject_type,
            jurisdiction=jurisdiction,
            requested_by=identify(rt.policy, requested_by, field="requested_by"),
            identity_check=identity_check,
            identity_method=identity_method,
            channel="cli",
            scope=scope,
            corrections=[
                *(parse_correction(c) for c in correct),
                *(Correction(text) for text in correction),
            ],
            execute=execute,
        )
    each = [_summary(result) for result in results]
    # The first request's fields at the top, as with one kind; every request under "requests".
    summary = {**each[0], "requests": each}
    created = any(result.created for result in results)
    lines = [outcome_line(result) for result in results]
    emit(summary, lines, executed=execute if created else None)
    return summary


def _summary(result: Submission) -> dict[str, object]:
    request = result.request
    return {
        "reference": request.reference,
        "kind": request.kind,
        "subject_type": request.subject_type,
        "subject_id": request.subject_id,
        "status": request.status,
        "jurisdiction": request.jurisdiction,
        "due_at": request.due_at,
        "created": result.created,
    }
