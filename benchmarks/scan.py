"""scan-personal-data at scale: one PostgreSQL system whose tables hold a million rows each.

    .venv/bin/python -m benchmarks.scan                        # 3 tables of 1,000,000 rows
    .venv/bin/python -m benchmarks.scan --rows 2000000 --sample 10000

PostgreSQL comes from BENCHMARK_POSTGRES_URL (or COMPLIANCE_TEST_POSTGRES_URL); the run works
in a schema of its own and drops it at the end. Target (issue 28): the whole scan of the
system, sampling and judging every column, in at most 10 s at a million rows per table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

from sqlalchemy import create_engine, text

from compliance.discovery.scan import scan_personal_data
from compliance.policy.loader import parse_policy

TARGET_S = 10.0
TABLES = {  # name -> SELECT list over generate_series(1, N) g
    "people": "g AS id, 'user' || g || '@example.org' AS email, 'Ada ' || g AS full_name, "
    "'+49 30 ' || (1000000 + g % 8999999) AS phone, md5(g::text) AS notes, "
    "now() - (g || ' minutes')::interval AS created_at",
    "events": "g AS id, g % 100000 AS person_id, '203.0.113.' || (g % 250 + 1) AS remote, "
    "md5(g::text) AS payload",
    "orders": "g AS id, g % 100000 AS person_id, 'SKU-' || (g % 5000) AS sku, "
    "(g % 100) * 1.5 AS amount",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    server = os.environ.get("BENCHMARK_POSTGRES_URL") or os.environ.get(
        "COMPLIANCE_TEST_POSTGRES_URL"
    )
    if not server:
        sys.exit("set BENCHMARK_POSTGRES_URL to a PostgreSQL server you may create schemas in")
    schema = f"pd_scan_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"
    try:
        started = time.perf_counter()
        with create_engine(url).begin() as conn:
            for name, columns in TABLES.items():
                conn.execute(text(f"CREATE TABLE {name} AS SELECT {columns} "
                                  f"FROM generate_series(1, {args.rows}) g"))  # fmt: skip
                conn.execute(text(f"ANALYZE {name}"))
            conn.execute(text("CREATE VIEW people_view AS SELECT email, full_name FROM people"))
        print(f"filled {len(TABLES)} tables of {args.rows:,} rows in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        policy = parse_policy({
            "database": {"url": "sqlite://"}, "app_database": {"url": url},
            "subjects": {"table": "people", "key": "id", "email": "email"},
            "tables": {"people": {"subject_column": "id", "on_erasure": "delete"}},
        }, env={})  # fmt: skip
        started = time.perf_counter()
        report = scan_personal_data(policy, system="app_database", sample=args.sample)
        seconds = time.perf_counter() - started
        (system,) = report.systems
        found = ", ".join(f"{f.table}.{f.column} ({f.status})" for f in system.findings)
        print(
            f"scanned {system.tables} tables and views, {system.columns} columns, sampling "
            f"{args.sample} rows each, in {seconds:.2f} s (target {TARGET_S:.0f} s)"
        )
        print(f"found: {found}")
        if seconds > TARGET_S:
            sys.exit(1)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
