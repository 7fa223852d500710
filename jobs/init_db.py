import logging

import click

from compliance.deletion.plans import record_missing_links
from compliance.demo.billing import create_demo_billing_database
from compliance.demo.generate import create_demo_app_database, write_demo_policy
from compliance.demo.seed import seed_demo_workflow, seed_fan_out
from compliance.discovery.coverage import subjects_table_warnings
from compliance.errors import Conflict
from compliance.logs import log_event
from compliance.policy.loader import config_path
from compliance.store.engines import make_engine, migrate
from jobs.cli import emit, job_command, runtime
from jobs.params import whole


@job_command("init-db", mutating=False)
@click.option("--demo", is_flag=True, help="Also create and fill the demo application database.")
@click.option(
    "--demo-users",
    default=3000,
    show_default=True,
    type=whole(1, 1_000_000),  # ASCII digits: click's int() took "１２"
    help="How many users the demo application database gets.",
)
def init_db(demo: bool, demo_users: int) -> dict[str, object]:
    """Create or upgrade the compliance database (safe to rerun; it never removes data)."""
    rt = runtime()
    lines = []
    summary: dict[str, object] = {}
    if demo and write_demo_policy(config_path()):
        lines.append(f"Wrote the demo policy file {config_path()}")
    summary["revision"] = migrate(rt.engine)
    lines.append(f"Compliance database at revision {summary['revision']}: {_where(rt.engine)}")
    if not demo:  # with --demo, the data map's check below says it
        for warning in subjects_table_warnings(rt.policy):
            log_event("policy.warning", logging.WARNING, message=warning)
    with rt.session() as session:  # the links in force at the upgrade, for plans without them
        linked = record_missing_links(session, rt.policy, actor=rt.actor)
    if linked.plans:
        summary["plans_linked"] = len(linked.plans)
        lines.append(
            f"Recorded the policy's links to the subject in {len(linked.plans)} erasure plans "
            f"accepted before plans kept them ({len(linked.batch_ids)} batches; audited)"
        )
    if demo:
        app = make_engine(rt.policy.app_database_url, what="application database")
        try:
            made = create_demo_app_database(app, users_count=demo_users)
            summary["demo_rows"] = made.rows
            lines.append(f"Demo application database filled: {_where(app)}")
            lines += [f"  {table}: {n} rows" for table, n in made.rows.items()]
        except Conflict as exc:
            lines.append(f"Demo application database kept as it is ({exc}).")
        finally:
            app.dispose()
        billing_url = rt.policy.systems["billing"].url if "billing" in rt.policy.systems else None
        if billing_url:
            billing = make_engine(billing_url, what="system 'billing' database")
            try:
                made_billing = create_demo_billing_database(billing, users_count=demo_users)
                lines.append(f"Demo billing database filled: {_where(billing)}")
                lines += [f"  {table}: {n} rows" for table, n in made_billing.items()]
            except Conflict as exc:
                lines.append(f"Demo billing database kept as it is ({exc}).")
            finally:
                billing.dispose()
        with rt.session() as session:
            seeded = seed_demo_workflow(session, rt.datamap, actor=rt.actor)
            if seeded:  # a fresh demo: show one erasure fanning out across three systems
                seeded.update(seed_fan_out(session, rt.datamap, actor=rt.actor))
        summary["demo_seeded"] = seeded
        if seeded:
            lines.append(
                "Demo review queue ready: " + ", ".join(f"{k}: {v}" for k, v in seeded.items())
            )
    emit(summary, lines)
    return summary


def _where(engine: object) -> str:
    return engine.url.render_as_string(hide_password=True)  # type: ignore[attr-defined]
