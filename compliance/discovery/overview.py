"""The Data map page's read model: systems, their tables and columns, and what the policy does.

Per SQL system, every table and view the database has (read from its catalog, read only,
no rows), each with its action (delete, anonymize, retain, or not mapped), its link to the
subject, the bucket rules and retention entries that reach it, and per column what erasure
does and what the last stored scan found there, judged against the policy as it stands
now. A DOT graph shows how each table reaches the subject; unmapped tables with personal
data stand out, unlinked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from compliance.discovery.coverage import finding_status
from compliance.discovery.findings import StoredFinding
from compliance.discovery.record_of_processing import bucket_rules_text
from compliance.discovery.sampling import SystemRead, read_system
from compliance.discovery.scan import own_tables
from compliance.policy.datamap import descendants
from compliance.policy.model import MappedTable, Policy, Subjects
from compliance.policy.strategies import ErasureAction
from compliance.policy.systems import APP_SYSTEM
from compliance.store.states import FindingStatus

NOT_MAPPED = "not mapped"
#: Fill colours of the graph by action; an unmapped table with personal data is red.
_FILL = {
    ErasureAction.DELETE: "#fee2e2",
    ErasureAction.ANONYMIZE: "#fef3c7",
    ErasureAction.RETAIN: "#dbeafe",
}
_UNCOVERED_FILL = "#fca5a5"


@dataclass(frozen=True)
class ColumnView:
    column: str
    type: str
    #: What erasure does to it: "deleted with the row", "anonymize (hash)", "left as is"…
    erasure: str
    exported: bool
    #: The last scan's category (a label), and the policy's answer to it now.
    found: str | None = None
    status: FindingStatus | None = None
    recognisers: str = ""


@dataclass(frozen=True)
class TableView:
    system: str
    name: str
    view: bool
    action: str
    link: str
    legal_basis: str | None
    rules: tuple[str, ...]
    retention: tuple[str, ...]
    columns: tuple[ColumnView, ...]
    notes: tuple[str, ...] = ()

    @property
    def personal(self) -> int:
        return sum(1 for c in self.columns if c.found)

    @property
    def uncovered(self) -> int:
        return sum(1 for c in self.columns if c.status is FindingStatus.UNCOVERED)

    @property
    def left_as_is(self) -> int:
        return sum(1 for c in self.columns if c.status is FindingStatus.LEFT_AS_IS)


@dataclass(frozen=True)
class SystemView:
    name: str
    kind: str
    description: str
    #: Why its tables are not shown: not an SQL system, or it could not be read.
    error: str | None
    tables: tuple[TableView, ...]
    dot: str


def read_schemas(policy: Policy) -> dict[str, SystemRead]:
    """Every SQL system's tables and columns, read only, without a row."""
    return {
        name: read_system(name, system.url or "", sample=0, skip=own_tables(policy, name))
        for name, system in policy.systems.items()
        if system.is_sql
    }


def _mapped(policy: Policy, system: str, table: str) -> MappedTable | None:
    mapped = policy.tables.get(table)
    return mapped if mapped is not None and mapped.system == system else None


def link_text(policy: Policy, mapped: MappedTable | None) -> str:
    """How a table's rows find their subject, hop by hop."""
    if mapped is None:
        return "none: not in the data map"
    subjects = policy.subject_types[mapped.subject]
    if mapped.name == subjects.table:
        kind = f" of {subjects.name}" if policy.multiple_subject_types else ""
        return f"the subjects table{kind} (key {subjects.key})"
    hops = []
    current = mapped
    while current.via is not None:
        hops.append(f"{current.via.column} → {current.via.table}")
        current = policy.tables[current.via.table]
    where = "" if current.system == APP_SYSTEM else f" in {APP_SYSTEM}"
    hops.append(f"{current.subject_column} → {subjects.table}.{subjects.key}{where}")
    return ", ".join(hops)


def _rules(policy: Policy, table: str, mapped: MappedTable | None) -> tuple[str, ...]:
    if mapped is None:
        return ()
    rules = [
        f"bucket {name}: {bucket_rules_text(bucket)}"
        for name, bucket in policy.buckets.items()
        if table in descendants(policy, bucket.tables)
    ]
    if mapped.on_erasure != ErasureAction.RETAIN:
        rules.append("erasure requests")
    return tuple(rules)


def _column_erasure(mapped: MappedTable | None, column: str) -> str:
    if mapped is None:
        return NOT_MAPPED
    if mapped.on_erasure == ErasureAction.DELETE:
        return "deleted with the row"
    if mapped.on_erasure == ErasureAction.RETAIN:
        return "retained"
    if column in mapped.anonymize:
        return f"anonymize ({mapped.anonymize[column]})"
    return "left as is"


def _table_view(
    policy: Policy,
    system: str,
    entry: SystemRead,
    index: int,
    found: Mapping[tuple[str, str], StoredFinding],
) -> TableView:
    read = entry.tables[index]
    mapped = _mapped(policy, system, read.name)
    columns = []
    for info in read.columns:
        stored = found.get((read.name, info.name))
        status = None
        if stored is not None:
            status = finding_status(policy, system, read.name, info.name)[0]
        columns.append(
            ColumnView(
                info.name,
                info.type_name,
                _column_erasure(mapped, info.name),
                exported=mapped is not None and info.name not in mapped.export_exclude,
                found=stored.label if stored else None,
                status=status,
                recognisers=", ".join(stored.recognisers) if stored else "",
            )
        )
    retention = tuple(
        f"[retention.{e.name}]: rows older than {e.days} days by {e.timestamp}"
        for e in policy.retention.values()
        if system == APP_SYSTEM and e.table == read.name
    )
    return TableView(
        system=system,
        name=read.name,
        view=read.view,
        action=mapped.on_erasure if mapped else NOT_MAPPED,
        link=link_text(policy, mapped),
        legal_basis=mapped.legal_basis if mapped else None,
        rules=_rules(policy, read.name, mapped),
        retention=retention,
        columns=tuple(columns),
        notes=tuple(read.notes),
    )


def _quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, a line break as DOT's ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _subject_node(policy: Policy, subjects: Subjects, lines: list[str]) -> str:
    """The ellipse standing for a kind's subjects table in another database's graph."""
    single = not policy.multiple_subject_types
    node = '"subject"' if single else _quote(f"subject:{subjects.name}")
    who = "the subject" if single else f"the {subjects.name} subject"
    label = _quote(f"{who}\n{subjects.table}.{subjects.key} in {APP_SYSTEM}")
    lines.append(f'  {node} [label={label}, shape=ellipse, fillcolor="#ffffff"];')
    return node


def system_graph(policy: Policy, system: str, tables: Sequence[TableView]) -> str:
    """DOT text: each mapped table an arrow towards its subject; unmapped personal data red."""
    lines = [
        f"digraph {_quote(system)} {{",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=10];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
        'fillcolor="#f3f4f6", color="#6b7280"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
    ]
    listing = {s.table for s in policy.subject_types.values()}
    outside: dict[str, str] = {}  # kind -> its node, for links from another database
    for view in tables:
        mapped = _mapped(policy, system, view.name)
        node = _quote(f"t:{view.name}")
        if mapped is None:
            if not view.uncovered:
                continue
            label = _quote(f"{view.name}\n{NOT_MAPPED} · {view.uncovered} uncovered")
            lines.append(
                f'  {node} [label={label}, fillcolor="{_UNCOVERED_FILL}", color="#b91c1c", '
                "penwidth=2];"
            )
            continue
        subjects = policy.subject_types[mapped.subject]
        extra = " · subjects table" if view.name in listing else ""
        gaps = f" · {view.left_as_is} left as is" if view.left_as_is else ""
        label = _quote(f"{view.name}\n{mapped.on_erasure}{extra}{gaps}")
        width = ", penwidth=2" if view.name in listing else ""
        lines.append(f'  {node} [label={label}, fillcolor="{_FILL[mapped.on_erasure]}"{width}];')
        if mapped.via is not None:
            target = _quote(f"t:{mapped.via.table}")
            lines.append(f"  {node} -> {target} [label={_quote(mapped.via.column)}];")
        elif view.name != subjects.table:
            target = _quote(f"t:{subjects.table}")
            if system != APP_SYSTEM:
                target = outside.setdefault(subjects.name, _subject_node(policy, subjects, lines))
            style = "" if system == APP_SYSTEM else ", style=dashed"
            column = _quote(mapped.subject_column or "")
            lines.append(f"  {node} -> {target} [label={column}{style}];")
    lines.append("}")
    return "\n".join(lines)


def data_map_overview(
    policy: Policy, reads: Mapping[str, SystemRead], findings: Sequence[StoredFinding]
) -> list[SystemView]:
    """Every system of the policy as the Data map page shows it."""
    views = []
    for name, system in policy.systems.items():
        read = reads.get(name)
        if not system.is_sql or read is None or read.error:
            if not system.is_sql:
                why = f"not scannable: a {system.kind} system"
            else:
                why = read.error if read is not None and read.error else "not read"
            views.append(SystemView(name, system.kind, system.description, why, (), ""))
            continue
        found = {(f.table, f.column): f for f in findings if f.system == name}
        tables = tuple(_table_view(policy, name, read, i, found) for i in range(len(read.tables)))
        views.append(SystemView(name, system.kind, system.description, None, tables,
                                system_graph(policy, name, tables)))  # fmt: skip
    return views
