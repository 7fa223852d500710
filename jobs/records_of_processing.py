"""records-of-processing: the Art. 30(1) record generated from the policy and the last scan."""

import click

from compliance.discovery.findings import last_findings
from compliance.discovery.record_of_processing import (
    FORMATS,
    record_of_processing,
    render_record,
)
from jobs.cli import job_command, runtime


@job_command("records-of-processing", mutating=False)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
def records(fmt: str) -> object:
    """Print the record of processing activities (GDPR Art. 30(1)): per bucket, and per group
    of tables no bucket erases, its purpose, data subjects, categories of personal data (from
    the last stored scan), recipients, transfers, time limits for erasure and legal bases.
    Changes nothing."""
    rt = runtime()
    with rt.session() as session:
        findings = last_findings(session)
    record = record_of_processing(rt.policy, findings)
    # --json (the group's flag) means the JSON record too.
    click.echo(render_record(record, "json" if rt.as_json else fmt), nl=False)
    return {"format": fmt, "activities": len(record.activities)}
