"""How long one subject's access export takes on a large PostgreSQL application database.

    PYTHONPATH=. .venv/bin/python benchmarks/dsar_export.py \
        postgresql+psycopg2://postgres@127.0.0.1/bench --users 1000000 --children 10

Fills the demo schema with USERS users and USERS*CHILDREN activity_logs rows (plus
workflows, runs and logs) with generate_series, indexes every subject_column and via
column as the README recommends, then times the export beside the raw SELECTs it makes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tomllib
from pathlib import Path

from sqlalchemy import text

from compliance.datamap import DataMap
from compliance.db import make_engine
from compliance.demo import DEMO_POLICY, metadata
from compliance.exports import build_access_export, collect_subject_data
from compliance.policy import parse_policy

FILL = [
    "INSERT INTO users (id, email, full_name, password_hash, created_at) "
    "SELECT i, 'u' || i || '@example.com', 'User ' || i, 'x', now() "
    "FROM generate_series(1, :users) i",
    "INSERT INTO workflows (id, user_id, name, created_at, updated_at) "
    "SELECT i, i, 'wf', now(), now() FROM generate_series(1, :users) i",
    "INSERT INTO workflow_runs (id, workflow_id, status, started_at) "
    "SELECT i, i, 'ok', now() FROM generate_series(1, :users) i",
    "INSERT INTO workflow_logs (workflow_run_id, level, message, created_at) "
    "SELECT i, 'info', 'ran', now() FROM generate_series(1, :users) i",
    "INSERT INTO activity_logs (user_id, action, created_at) "
    "SELECT 1 + (i % :users), 'login', now() FROM generate_series(1, :users * :children) i",
]

WF = "SELECT id FROM workflows WHERE user_id = :s"
RUNS = f"SELECT id FROM workflow_runs WHERE workflow_id IN ({WF})"
INV = "SELECT id FROM invoices WHERE user_id = :s"
RAW = {  # what a developer would write by hand for the demo schema: the baseline
    "users": "SELECT * FROM users WHERE id = :s",
    "workflows": "SELECT * FROM workflows WHERE user_id = :s",
    "workflow_runs": f"SELECT * FROM workflow_runs WHERE workflow_id IN ({WF})",
    "workflow_logs": f"SELECT * FROM workflow_logs WHERE workflow_run_id IN ({RUNS})",
    "api_tokens": "SELECT * FROM api_tokens WHERE user_id = :s",
    "activity_logs": "SELECT * FROM activity_logs WHERE user_id = :s",
    "support_tickets": "SELECT * FROM support_tickets WHERE user_id = :s",
    "invoices": "SELECT * FROM invoices WHERE user_id = :s",
    "payments": f"SELECT * FROM payments WHERE invoice_id IN ({INV})",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="an EMPTY PostgreSQL database; it is filled")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--children", type=int, default=10)
    parser.add_argument("--subject", default="4242")
    args = parser.parse_args()
    engine = make_engine(args.url)
    metadata.create_all(engine)  # the demo tables index user_id and every via column
    started = time.monotonic()
    with engine.begin() as conn:
        if not conn.scalar(text("SELECT count(*) FROM users")):
            for statement in FILL:
                conn.execute(text(statement), {"users": args.users, "children": args.children})
        conn.execute(text("ANALYZE"))
    print(f"fill: {time.monotonic() - started:.1f}s")
    policy = parse_policy(tomllib.loads(DEMO_POLICY.read_text()), env={})
    datamap = DataMap(policy, engine)
    started = time.monotonic()
    with engine.connect() as conn:
        for sql in RAW.values():
            conn.execute(text(sql), {"s": int(args.subject)}).all()
    print(f"raw SELECTs for subject {args.subject}: {time.monotonic() - started:.3f}s")
    started = time.monotonic()
    data = collect_subject_data(datamap, args.subject)
    print(
        f"collect: {time.monotonic() - started:.3f}s ({sum(len(t.rows) for t in data.tables)} rows)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        export = build_access_export(
            datamap, args.subject, reference="DSAR-BENCH", directory=Path(tmp)
        )
        print(f"export ZIP: {time.monotonic() - started:.3f}s ({export.bytes} bytes)")


if __name__ == "__main__":
    main()
