"""How long the dashboard's read models take on a big review queue (PostgreSQL).

Fills a fresh schema with BATCHES deletion batches and RECORDS deletion records (set-based
INSERT ... SELECT generate_series, a few seconds), then times what each page reads.
Target: every page under one second. Not a test: timings depend on the machine.

    .venv/bin/python benchmarks/dashboard_pages.py postgresql+psycopg2://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable

from sqlalchemy import create_engine, text

from compliance import review_queue, stats
from compliance.db import make_engine, migrate, session_factory

BATCHES = 5_000
RECORDS = 1_000_000


def fill(url: str, batches: int, records: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    per_batch = records // batches
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO compliance_profiles (id, subject_id, created_at, updated_at) "
                "SELECT g, g::text, now(), now() FROM generate_series(1, :n) g"
            ),
            {"n": records},
        )
        conn.execute(
            text(
                "INSERT INTO deletion_batches "
                "(id, bucket, reviewed_status, created_at, updated_at) "
                "SELECT g, 'bucket_' || (g % 5), CASE WHEN g % 3 = 0 THEN 'accepted' "
                "ELSE 'pending' END, now() - (g || ' minutes')::interval, now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": batches},
        )
        conn.execute(
            text(
                "INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_batch_id, "
                "deletion_scheduled_at, deletion_applied_at, accepted_for_deletion, "
                "is_manually_reviewed, created_at, updated_at) "
                "SELECT g, 'bucket_' || (((g - 1) / :per + 1) % 5), (g - 1) / :per + 1, now(), "
                "CASE WHEN g % 7 = 0 THEN now() - ((g % 80) || ' days')::interval END, "
                "CASE WHEN g % 7 = 0 THEN true END, false, now(), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": records, "per": per_batch},
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def timed(name: str, call: Callable[[], object]) -> float:
    call()  # warm the connection pool and the plan cache, as a second visitor would
    start = time.perf_counter()
    call()
    elapsed = time.perf_counter() - start
    print(f"{name:<40} {elapsed * 1000:8.1f} ms {'OK' if elapsed < 1 else 'SLOW'}")
    return elapsed


def main(server_url: str, batches: int = BATCHES, records: int = RECORDS) -> int:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{server_url}{'&' if '?' in server_url else '?'}options=-csearch_path%3D{schema}"
    try:
        start = time.perf_counter()
        fill(url, batches, records)
        print(f"filled {batches} batches, {records} records in {time.perf_counter() - start:.1f} s")
        engine = make_engine(url)
        with session_factory(engine)() as s:
            worst = max(
                timed("batches: pending, first page", lambda: review_queue.list_batches(
                    s, status="pending", limit=25)),
                timed("batches: bucket filter, page 100", lambda: review_queue.list_batches(
                    s, bucket="bucket_3", limit=25, offset=2475)),
                timed("batches: bucket list", lambda: review_queue.batch_buckets(s)),
                timed("batch records: page 2", lambda: review_queue.batch_records(
                    s, batches // 2, limit=50, offset=50)),
                timed("progress: per bucket", lambda: stats.bucket_progress(s)),
                timed("progress: deletions per week", lambda: stats.deletions_per_week(s)),
                timed("audit log: first page", lambda: review_queue.audit_log(s, limit=100)),
            )  # fmt: skip
        engine.dispose()
        return 0 if worst < 1 else 1
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], *(int(a) for a in sys.argv[2:4])))
