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
    "one subject's export",
    "verify-audit-log",
    "dashboard: deletion batches page",
    "dashboard: progress page",
]


def test_a_small_benchmark_run_reports_every_operation_with_a_ratio(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--small", "--subjects", "2000",
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    table = [line for line in output.read_text().splitlines() if line.startswith("| ")]
    for operation in OPERATIONS:
        row = next((line for line in table if line.startswith(f"| {operation}")), None)
        assert row is not None, f"{operation} missing from {table}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) > 0, row
    assert "commit" in output.read_text() and "machine:" in output.read_text()
