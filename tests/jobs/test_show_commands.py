"""show-batch and show-request: what the batch and DSAR pages show, at a terminal (both DBs)."""

from __future__ import annotations

import json
from typing import Any

from compliance.deletion.exclusions import exclude_records
from tests.conftest import DPO, Deployment
from tests.dashboard.conftest import OFFICER, pending_batch, queue  # noqa: F401


def run_json(d: Deployment, *args: str) -> Any:
    result = d.run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_show_batch_lists_each_record_with_why_it_is_due_and_its_flags(
    queue: Deployment,  # noqa: F811
) -> None:
    batch_id = pending_batch(queue)
    shown = run_json(queue, "show-batch", str(batch_id))
    records = shown["records"]
    assert (shown["bucket"], shown["status"], len(records)) == ("closed_accounts", "pending", 5)
    first = records[0]
    assert set(first) == {"record_id", "subject_id", "why_due", "flags", "note"}
    # The evidence the batch page shows: the bucket's rules, by their headers.
    assert set(first["why_due"]) == set(shown["evidence"]) and shown["evidence"]
    assert first["flags"] == "" and first["note"] is None

    with queue.session() as s:
        exclude_records(s, batch_id, {first["record_id"]: "Customer in a dispute"}, actor=DPO)
    text = queue.run("show-batch", str(batch_id))
    assert text.exit_code == 0, text.output
    line = next(x for x in text.output.splitlines() if f"record {first['record_id']} " in x)
    assert f"subject {first['subject_id']}" in line
    assert "excluded, manually reviewed" in line and "note: Customer in a dispute" in line
    assert "1 excluded" in text.output


def test_a_decision_from_the_listing_is_refused_once_the_batch_changed(
    queue: Deployment,  # noqa: F811
) -> None:
    batch_id = pending_batch(queue)
    version = run_json(queue, "show-batch", str(batch_id))["target"]["version"]
    record = run_json(queue, "show-batch", str(batch_id))["records"][0]["record_id"]
    with queue.session() as s:
        exclude_records(s, batch_id, {record: "Customer in a dispute"}, actor=DPO)

    refused = queue.run(
        "review-batch", str(batch_id), "--accept", "--reviewer", OFFICER,
        "--seen-version", version, "--execute",
    )  # fmt: skip
    assert refused.exit_code == 2
    assert f"batch {batch_id} changed since you looked (excluded records 0 → 1)" in refused.output
    assert run_json(queue, "show-batch", str(batch_id))["status"] == "pending"

    fresh = run_json(queue, "show-batch", str(batch_id))["target"]["version"]
    done = queue.run(
        "review-batch", str(batch_id), "--accept", "--reviewer", OFFICER,
        "--seen-version", fresh, "--execute",
    )  # fmt: skip
    assert done.exit_code == 0, done.output


def test_show_batch_names_a_batch_that_is_not_there(queue: Deployment) -> None:  # noqa: F811
    missing = queue.run("show-batch", "999999")
    assert missing.exit_code == 2
    assert "no deletion batch with id 999999" in missing.output


def test_show_request_prints_the_request_and_its_timeline(queue: Deployment) -> None:  # noqa: F811
    reference = run_json(
        queue, "submit-dsar", "--kind", "access", "--subject-id", "42",
        "--requested-by", "support@example.com", "--execute",
    )["reference"]  # fmt: skip
    approved = queue.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute")
    assert approved.exit_code == 0, approved.output

    shown = run_json(queue, "show-request", reference)
    assert (shown["reference"], shown["kind"], shown["status"]) == (reference, "access", "approved")
    assert [e["label"] for e in shown["timeline"]] == ["Logged", "Approved"]
    assert "actions" not in shown  # a terminal is shown the request, not a page's buttons
    text = queue.run("show-request", reference)
    assert text.exit_code == 0, text.output
    assert f"{reference} · access · approved · subject 42" in text.output
    assert f"Approved · {OFFICER}" in text.output

    missing = queue.run("show-request", "DSAR-2000-000001")
    assert missing.exit_code == 2 and "DSAR-2000-000001" in missing.output
