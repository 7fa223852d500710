"""The benchmark stays runnable: a tiny --small run measures every operation against raw SQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

OPERATIONS = [
    "create-deletion-records",
    "create-deletion-batches",
    "apply-deletions",
    "apply-deletions, beside raw SQL that also claims and marks",
    "one subject's export",
    "verify-audit-log",
    "dashboard: deletion batches page",
    "dashboard: progress page",
]


def test_a_small_benchmark_run_reports_every_operation_with_a_ratio(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--small", "--sizes", "1000,2000",
         "--row-at-a-time", "50", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = output.read_text()
    table = [line for line in results.splitlines() if line.startswith("| ")]
    for operation in OPERATIONS:
        row = next((line for line in table if line.startswith(f"| {operation}")), None)
        assert row is not None, f"{operation} missing from {table}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) > 0, row
    assert "commit" in results and "machine:" in results
    # The scaling table has a per-100k figure for each job at both sizes.
    assert "| job | 1,000 | 2,000 | largest / smallest |" in results
    scaling = results.split("| job | 1,000 | 2,000 |")[1]
    apply = next(line for line in scaling.splitlines() if line.startswith("| apply-deletions |"))
    assert float(apply.split("|")[2]) > 0 and float(apply.split("|")[3]) > 0, apply
    # Row-at-a-time erasure is measured beside ours, by SQL per row and by ORM per object.
    lead = [line for line in table if "per row and table" in line or "object by object" in line]
    assert len(lead) == 2 and all(float(line.split("|")[2]) > 0 for line in lead), lead
