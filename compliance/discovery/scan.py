"""The scan: where each SQL system holds personal data, and what the policy does with it.

A column of personal data the data map does not reach survives every erasure and is missing
from every access export, and nobody is told: the scan tells. It reads each SQL system's
schema and a bounded sample (``sampling``), judges every column by its name and its values
(``recognisers``) and sorts what it finds by the policy's answer (``FindingStatus``):
uncovered (a table the data map does not name), left as it is (an anonymized table's
column no strategy names), retained (with the table's legal basis), deleted, anonymized,
or accepted by an officer in ``[scan] accept``. Findings carry counts and recogniser names,
never a sampled value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from compliance.discovery.coverage import finding_status
from compliance.discovery.names import CATEGORY_LABELS, Category
from compliance.discovery.sampling import (
    DEFAULT_SAMPLE,
    MAX_SAMPLE,
    SystemRead,
    read_system,
)
from compliance.discovery.values import judge_column
from compliance.errors import InvalidInput
from compliance.policy.model import Policy
from compliance.policy.systems import SystemKind
from compliance.store.models import Base, utcnow
from compliance.store.states import COVERED_FINDINGS, FindingStatus


@dataclass(frozen=True)
class ColumnFinding:
    """One column of personal data: where, what kind, by which recognisers, how many sampled
    values matched, and what the policy does with it. Never a value."""

    system: str
    table: str
    column: str
    category: Category
    recognisers: tuple[str, ...]
    #: Non-empty values sampled, and how many the recognisers matched (0, 0: by name only).
    sampled: int
    matched: int
    status: FindingStatus

    @property
    def key(self) -> str:
        """``system.table.column``, as ``[scan] accept`` names a column."""
        return f"{self.system}.{self.table}.{self.column}"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self.category]


@dataclass(frozen=True)
class Finding(ColumnFinding):
    """A finding of this scan, with what its status rests on."""

    #: The anonymize strategy, the legal basis or the accept reason.
    detail: str | None = None
    #: Left out of access exports (``export_exclude``).
    export_excluded: bool = False


@dataclass
class SystemScan:
    """One system's part of the report."""

    name: str
    kind: str
    #: Why the system was not scanned: a webhook or manual system, or one that is down.
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    tables: int = 0
    columns: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def scannable(self) -> bool:
        return self.kind == SystemKind.SQL

    @property
    def readable(self) -> bool:
        return self.scannable and self.error is None

    def having(self, *statuses: FindingStatus) -> list[Finding]:
        return [f for f in self.findings if f.status in statuses]

    @property
    def uncovered(self) -> list[Finding]:
        return self.having(FindingStatus.UNCOVERED)

    @property
    def coverage(self) -> float | None:
        """The share of personal columns the policy handles; None when none were found."""
        if not self.findings:
            return None
        return len(self.having(*COVERED_FINDINGS)) / len(self.findings)


@dataclass
class ScanReport:
    systems: list[SystemScan]
    sample: int
    started_at: datetime
    finished_at: datetime

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.systems for f in s.findings]

    @property
    def uncovered(self) -> list[Finding]:
        return [f for s in self.systems for f in s.uncovered]

    @property
    def unreadable(self) -> list[SystemScan]:
        return [s for s in self.systems if s.scannable and s.error is not None]

    @property
    def problems(self) -> list[str]:
        """Uncovered personal data, and SQL systems it could not read: a gate fails closed."""
        problems = []
        if self.uncovered:
            keys = ", ".join(f.key for f in self.uncovered)
            problems.append(f"personal data no erasure reaches: {keys}")
        if self.unreadable:
            problems.append(f"cannot read {', '.join(s.name for s in self.unreadable)}")
        return problems

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    @property
    def coverage(self) -> float | None:
        findings = self.findings
        if not findings:
            return None
        return sum(1 for f in findings if f.status in COVERED_FINDINGS) / len(findings)


def check_sample(sample: int) -> int:
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= MAX_SAMPLE:
        raise InvalidInput(
            f"{{field}} must be a whole number from 1 to {MAX_SAMPLE}, got {sample!r}",
            field="sample",
        )
    return sample


def scanned_systems(policy: Policy, system: str | None) -> list[str]:
    """The systems a scan reports on: all of them, or the one SQL system asked for."""
    if system is None:
        return list(policy.systems)
    found = policy.system(system)  # NotFound naming the known ones
    if not found.is_sql:
        raise InvalidInput(
            f"{{field}}: '{system}' is a {found.kind} system; only sql systems can be scanned",
            field="system",
        )
    return [system]


def own_tables(policy: Policy, system: str) -> frozenset[str]:
    """This tool's own tables, when the compliance database is that system's database."""
    url = policy.systems[system].url
    if url is not None and url == policy.database_url:
        return frozenset({*Base.metadata.tables, "alembic_version"})
    return frozenset()


def _judge(policy: Policy, read: SystemRead) -> SystemScan:
    result = SystemScan(read.name, SystemKind.SQL, notes=list(read.notes))
    for entry in read.tables:
        result.notes += entry.notes
        if not entry.columns:
            continue
        result.tables += 1
        for info in entry.columns:
            result.columns += 1
            values = None if entry.values is None else entry.values.get(info.name)
            verdict = judge_column(entry.name, info.name, info.kind, values)
            if verdict is None:
                continue
            status, detail, excluded = finding_status(policy, read.name, entry.name, info.name)
            result.findings.append(
                Finding(read.name, entry.name, info.name, verdict.category, verdict.recognisers,
                        verdict.sampled, verdict.matched, status, detail, excluded)
            )  # fmt: skip
    return result


def _unused_accepts(
    policy: Policy, scans: Iterable[SystemScan], reads: dict[str, SystemRead]
) -> None:
    """An accept entry that names no column any more is a line in its system's report."""
    for scan in scans:
        read = reads.get(scan.name)
        if read is None or read.error:
            continue
        columns = {f"{scan.name}.{t.name}.{c.name}" for t in read.tables for c in t.columns}
        for key in policy.scan.accept:
            if key.startswith(f"{scan.name}.") and key not in columns:
                scan.notes.append(f"scan.accept: {key} names no column of this system")


def scan_personal_data(
    policy: Policy, *, system: str | None = None, sample: int = DEFAULT_SAMPLE
) -> ScanReport:
    """Scan every system of the policy (or the one named) for personal data; read only.

    Webhook and manual systems are listed as not scannable; an SQL system that cannot be
    read is reported with its reason (and makes the report ``failed``).
    """
    check_sample(sample)
    names = scanned_systems(policy, system)
    started = utcnow()
    scans: list[SystemScan] = []
    reads: dict[str, SystemRead] = {}
    for name in names:
        declared = policy.systems[name]
        if not declared.is_sql:
            why = f"not scannable: a {declared.kind} system"
            scans.append(SystemScan(name, declared.kind, error=why))
            continue
        assert declared.url is not None
        read = read_system(name, declared.url, sample=sample, skip=own_tables(policy, name))
        reads[name] = read
        if read.error is not None:
            scans.append(SystemScan(name, SystemKind.SQL, error=read.error))
            continue
        scans.append(_judge(policy, read))
    _unused_accepts(policy, scans, reads)
    return ScanReport(scans, sample, started, utcnow())


def _percent(share: float | None) -> str:
    return "no personal data found" if share is None else f"coverage {share:.0%}"


def _evidence(finding: Finding) -> str:
    how = ", ".join(finding.recognisers)
    if finding.sampled:
        how += f"; {finding.matched} of {finding.sampled} sampled values matched"
    return how


#: How the report names each status, in the order it lists them.
_SECTIONS = (
    (FindingStatus.UNCOVERED, "uncovered (in tables no erasure reaches)"),
    (FindingStatus.LEFT_AS_IS, "left as they are by erasure (anonymized tables)"),
    (FindingStatus.RETAINED, "kept under retain"),
    (FindingStatus.ACCEPTED, "accepted in [scan] accept"),
)


def report_lines(report: ScanReport) -> list[str]:
    """The report as plain lines, per system: what was read, the coverage figure, each
    finding the officer must see, and every table it could not fully read."""
    sql = [s for s in report.systems if s.scannable]
    findings = report.findings
    lines = [
        f"Scanned {len(sql)} SQL system(s), at most {report.sample} rows per table: "
        f"{len(findings)} column(s) of personal data, {_percent(report.coverage)} "
        "(erased, anonymized, retained with a legal basis, or accepted)"
    ]
    for system in report.systems:
        if system.error is not None:
            lines.append(f"{system.name}: {system.error}")
            continue
        erased = system.having(FindingStatus.DELETED, FindingStatus.ANONYMIZED)
        lines.append(
            f"{system.name}: {system.tables} tables and views, {system.columns} columns; "
            f"{len(system.findings)} personal, {len(erased)} deleted or anonymized by erasure; "
            f"{_percent(system.coverage)}"
        )
        for status, title in _SECTIONS:
            for f in system.having(status):
                why = f" — {f.detail}" if f.detail else ""
                lines.append(f"  {title}: {f.table}.{f.column} ({f.label}; {_evidence(f)}){why}")
        for f in system.findings:
            if f.export_excluded:
                lines.append(f"  excluded from access exports: {f.table}.{f.column} ({f.label})")
        lines += [f"  note: {note}" for note in system.notes]
    return lines


def report_data(report: ScanReport) -> dict[str, Any]:
    """The report for --json: every finding with its counts, never a value."""
    return {
        "sample": report.sample,
        "failed": report.failed,
        "coverage": report.coverage,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
        "systems": [
            {
                "name": s.name,
                "kind": s.kind,
                "error": s.error,
                "tables": s.tables,
                "columns": s.columns,
                "coverage": s.coverage,
                "notes": s.notes,
                "findings": [
                    {
                        "key": f.key,
                        "table": f.table,
                        "column": f.column,
                        "category": str(f.category),
                        "status": str(f.status),
                        "recognisers": list(f.recognisers),
                        "sampled": f.sampled,
                        "matched": f.matched,
                        "detail": f.detail,
                        "export_excluded": f.export_excluded,
                    }
                    for f in s.findings
                ],
            }
            for s in report.systems
        ],
    }
