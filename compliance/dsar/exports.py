"""Access exports: everything the systems hold about one subject, as a ZIP they can read.

The ZIP holds ``data.json`` (when it was exported, the request it answers, and one key per
SQL table with rows as objects; dates ISO 8601 with their UTC offset), one folder per
system (``app_database/``, ``billing/``, ``helpdesk/`` ...) with one CSV per table of an SQL
system, or the file a webhook returned or a person uploaded, ``README.txt`` (what each file
holds, what was left out and why, the legal basis of data we keep) and ``manifest.json``
(size and SHA-256 of every other file). It is written through the export store
(compliance.storage: a folder, or a bucket), which counts it only once what landed is read
back intact. Each table is one indexed query through the data map: no query per row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.csv_files import rows_to_csv
from compliance.deletion.profiles import ensure_profiles
from compliance.dsar.deadlines import effective_due_at
from compliance.errors import InvalidInput, NotFound
from compliance.policy.datamap import DataMap
from compliance.policy.strategies import ErasureAction
from compliance.policy.systems import APP_SYSTEM
from compliance.roles import COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.storage import Area, ExportStore, Writer
from compliance.storage.folder import SAFE_NAME as _SAFE_NAME
from compliance.storage.folder import FolderStore, user_export_name
from compliance.store.models import DsarRequest, UserExport, utcnow
from compliance.store.states import DsarKind

# A safety net under the policy's export_exclude: credentials never leave, whatever the map says.
_CREDENTIAL = re.compile(r"password|passwd|secret|token_hash|api_key|otp_hash|private_key", re.I)


@dataclass(frozen=True)
class TableData:
    name: str
    columns: list[str]
    rows: list[dict[str, Any]]
    excluded: dict[str, str]  # column -> why it was left out
    legal_basis: str | None
    on_erasure: str
    system: str = APP_SYSTEM


@dataclass(frozen=True)
class SystemFile:
    """A webhook's returned data or a person's upload: the system's part of the export."""

    system: str
    name: str
    content: bytes


@dataclass(frozen=True)
class SubjectData:
    subject_id: str
    tables: list[TableData]
    #: Only what the subject provided (a portability export), not all we hold.
    portable_only: bool = False
    #: Where the desk serves several kinds of data subject, the kind's folder
    #: (``employees/``) the export's tables and parts sit in; "" where it serves one.
    folder: str = ""

    def as_json_document(
        self, exported_at: datetime, request: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """When it was exported, the request it answers (if any), then one key per table."""
        document: dict[str, Any] = {"exported_at": plain(exported_at)}
        if request is not None:
            document["request"] = dict(request)
        document["tables"] = {
            t.name: [{k: plain(v) for k, v in row.items()} for row in t.rows] for t in self.tables
        }
        return document


@dataclass(frozen=True)
class ExportFile:
    """An export as its store holds it: the location (a path, or ``s3://BUCKET/KEY``)."""

    location: str
    bytes: int
    sha256: str
    rows: dict[str, int] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """JSON- and CSV-friendly values: ISO dates, exact decimals, base64 bytes.

    Timestamps carry their UTC offset; naive ones are UTC by this tool's convention (the
    compliance database stores naive UTC, and the application database is read the same way).
    """
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def excluded_columns(datamap: DataMap, name: str) -> dict[str, str]:
    mapped = datamap.mapped(name)
    reasons = {
        c: "left out by our data policy (internal or security data)" for c in mapped.export_exclude
    }
    for column in datamap.table(name).columns:
        if column.name not in reasons and _CREDENTIAL.search(column.name):
            reasons[column.name] = "a security credential; never exported"
    return reasons


def request_metadata(request: DsarRequest) -> dict[str, Any]:
    """What the subject may learn about their own request: reference, dates, decision."""
    return {
        "reference": request.reference,
        "kind": request.kind,
        "jurisdiction": request.jurisdiction,
        "received_at": plain(request.requested_at),
        "due_at": plain(effective_due_at(request)),
        "extended": request.extended_due_at is not None,
        "extension_reason": request.extension_reason,
        "decision": "approved" if request.reviewed_at else "approved by policy",
        "decided_at": plain(request.reviewed_at),
    }


Progress = Callable[[int, int, str], None]  # tables done, tables in all, the table just read


def collect_subject_data(
    datamap: DataMap,
    subject_id: str,
    progress: Progress | None = None,
    *,
    portable_only: bool = False,
    subject_type: str | None = None,
) -> SubjectData:
    """Walk the data map of the subject's kind (retain tables too: they are the subject's
    data as well), or with ``portable_only`` the tables holding what the subject provided
    (GDPR Art. 20). Customer 5's export never holds employee 5's rows."""
    kind = datamap.policy.subject_kind(subject_type).name

    def wanted(system: str) -> list[str]:
        names = [n for n in datamap.tables_in(system) if datamap.mapped(n).subject == kind]
        return [n for n in names if datamap.mapped(n).portable] if portable_only else names

    tables = []
    total = sum(len(wanted(system)) for system in datamap.sql_systems())
    done = 0
    for system in datamap.sql_systems():
        engine = datamap.engine_for(system)
        options = (
            {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
        )
        with engine.connect().execution_options(**options) as conn:
            for name in wanted(system):
                mapped = datamap.mapped(name)
                excluded = excluded_columns(datamap, name)
                columns, rows = datamap.subject_rows(conn, name, [subject_id], exclude=excluded)
                tables.append(
                    TableData(
                        name=name,
                        columns=columns,
                        rows=[dict(r) for r in rows],
                        excluded=excluded,
                        legal_basis=mapped.legal_basis,
                        on_erasure=mapped.on_erasure,
                        system=system,
                    )
                )
                done += 1
                if progress is not None:
                    progress(done, total, name)
    tables.sort(key=lambda t: t.name)
    folder = f"{kind}/" if datamap.policy.multiple_subject_types else ""
    return SubjectData(str(subject_id), tables, portable_only, folder)


def csv_bytes(table: TableData) -> bytes:
    """One table as CSV; formula-like cells are neutralised (data.json keeps them as they are)."""
    return rows_to_csv(
        table.columns, ([plain(row[c]) for c in table.columns] for row in table.rows)
    )


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8")


def csv_name(table: str) -> str:
    return f"{_SAFE_NAME.sub('_', table)}.csv"


def csv_path(table: TableData, folder: str = "") -> str:
    """Where a table's CSV sits in the ZIP: in its system's folder (in its kind's)."""
    return f"{folder}{table.system}/{csv_name(table.name)}"


def system_file_path(part: SystemFile, folder: str = "") -> str:
    return f"{folder}{part.system}/{_SAFE_NAME.sub('_', part.name)}"


def readme_text(
    data: SubjectData,
    reference: str | None,
    generated_at: datetime,
    *,
    with_json: bool,
    parts: Sequence[SystemFile] = (),
) -> str:
    title = f"Your personal data (request {reference})" if reference else "Your personal data"
    lines = [
        title,
        "=" * len(title),
        "",
        f"Generated at {plain(generated_at)}. Dates and times are ISO 8601 with their UTC offset.",
        "",
        *(
            [
                "This export holds the personal data you provided to us (GDPR Art. 20), in",
                "files another service can read; ask for a copy of your data for all we hold.",
                "",
            ]
            if data.portable_only
            else []
        ),
        "Files",
        "-----",
    ]
    if with_json:
        lines.append("data.json      all the data below in one JSON document: when it was")
        lines.append("               exported, the request it answers (reference, dates,")
        lines.append("               decision), and under 'tables' one key per table")
    for table in data.tables:
        lines.append(
            f"{csv_path(table, data.folder)}: {len(table.rows)} row(s) from '{table.name}' "
            "(UTF-8 CSV, header row)"
        )
    for part in parts:
        where = system_file_path(part, data.folder)
        lines.append(f"{where}: what the system '{part.system}' holds about you")
    lines.append("manifest.json  size and SHA-256 of every other file, to check nothing changed")
    lines += ["", "Left out", "--------"]
    left_out = [(t.name, c, why) for t in data.tables for c, why in sorted(t.excluded.items())]
    if left_out:
        lines += [f"{table}.{column}: {why}" for table, column, why in left_out]
    else:
        lines.append("Nothing: every column we hold about you is included.")
    lines += [
        "",
        "Kept under a legal obligation (not erased on request)",
        "-----------------------------------------------------",
    ]
    kept = [t for t in data.tables if t.on_erasure == ErasureAction.RETAIN]
    if kept:
        lines += [f"{t.name}: {t.legal_basis or 'a legal obligation to keep it'}" for t in kept]
    else:
        lines.append("Nothing.")
    return "\n".join(lines) + "\n"


def _zip_files(
    files: Mapping[str, bytes], reference: str | None, subject_id: str, generated_at: datetime
) -> dict[str, bytes]:
    manifest = {
        "reference": reference,
        "subject_id": subject_id,
        "generated_at": plain(generated_at),
        "files": [
            {"name": name, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            for name, content in files.items()
        ],
    }
    return {**files, "manifest.json": json_bytes(manifest)}


def zip_writer(files: Mapping[str, bytes]) -> Writer:
    """Writes ``files`` as one ZIP into whatever handle the store gives it."""

    def write(handle: IO[bytes]) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in files.items():
                archive.writestr(name, content)

    return write


def export_files(
    data: SubjectData,
    reference: str | None,
    generated_at: datetime,
    *,
    with_json: bool = True,
    parts: Sequence[SystemFile] = (),
    request: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every file of the ZIP; the manifest covers the SQL tables and the other systems' parts."""
    files: dict[str, bytes] = {}
    if with_json:
        files["data.json"] = json_bytes(data.as_json_document(generated_at, request))
    for table in data.tables:
        files[csv_path(table, data.folder)] = csv_bytes(table)
    for part in parts:
        files[system_file_path(part, data.folder)] = part.content
    files["README.txt"] = readme_text(
        data, reference, generated_at, with_json=with_json, parts=parts
    ).encode("utf-8")
    return _zip_files(files, reference, data.subject_id, generated_at)


def build_access_export(
    datamap: DataMap,
    subject_id: str,
    *,
    reference: str,
    store: ExportStore,
    now: datetime | None = None,
    parts: Sequence[SystemFile] = (),
    request: DsarRequest | None = None,
    progress: Progress | None = None,
) -> ExportFile:
    """The ZIP answering an access request, written to ``store`` (a folder names it
    ``REFERENCE.zip``); answering a portability request, only the tables marked ``portable``
    (what the subject provided)."""
    generated_at = now or utcnow()
    portable = request is not None and request.kind == DsarKind.PORTABILITY
    kind = None if request is None else request.subject_type
    data = collect_subject_data(
        datamap, subject_id, progress, portable_only=portable, subject_type=kind
    )
    meta = request_metadata(request) if request is not None else None
    files = export_files(data, reference, generated_at, request=meta, parts=parts)
    stored = store.write(Area.EXPORTS, f"{reference}.zip", zip_writer(files))
    return ExportFile(
        stored.location, stored.bytes, stored.sha256, {t.name: len(t.rows) for t in data.tables}
    )


def build_user_export(
    datamap: DataMap,
    subject_id: str,
    *,
    fmt: str,
    store: ExportStore,
    now: datetime | None = None,
    subject_type: str | None = None,
) -> ExportFile:
    """Support's direct export: ``json`` is data.json alone, ``csv`` a ZIP of CSVs."""
    generated_at = now or utcnow()
    subject_id = datamap.subject_key(subject_id, subject_type)
    data = collect_subject_data(datamap, subject_id, subject_type=subject_type)
    subjects = datamap.policy.subject_kind(subject_type).table
    if not any(t.name == subjects and t.rows for t in data.tables):
        raise NotFound(f"no data subject with id '{subject_id}' in {subjects}")
    if fmt not in ("json", "csv"):
        raise InvalidInput(f"{{field}} must be json or csv, got '{fmt}'", field="format")
    rows = {t.name: len(t.rows) for t in data.tables}
    writer: Writer
    if fmt == "json":
        content = json_bytes(data.as_json_document(generated_at))
        name = user_export_name(str(subject_id), generated_at, "json")
        writer = lambda handle: handle.write(content)  # noqa: E731
    else:
        name = user_export_name(str(subject_id), generated_at, "zip")
        writer = zip_writer(export_files(data, None, generated_at, with_json=False))
    try:
        stored = store.write(Area.SUPPORT, name, writer)
    except OSError as exc:
        # A folder under /proc, a read-only disk, a full disk: say so, leave nothing behind.
        raise InvalidInput(
            f"cannot write the export to {store.describe()}: {exc.strerror or type(exc).__name__}"
        ) from None
    return ExportFile(stored.location, stored.bytes, stored.sha256, rows)


def export_user_data(
    session: Session,
    datamap: DataMap,
    subject_id: str,
    *,
    fmt: str,
    actor: Identity,
    store: ExportStore | None = None,
    directory: Path | None = None,
    now: datetime | None = None,
    subject_type: str | None = None,
) -> ExportFile:
    """Support's direct export, audited under the subject's compliance profile id.

    A subject's whole data in one file: only support staff and compliance officers may
    take it, and the audit trail names the person, not the account the job ran under.
    Written to ``store`` (the policy's), where cleanup and erasure find it by its
    ``user_exports`` row; or, with ``directory``, a local file for the person at the terminal.
    """
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="export a subject's data")
    if (store is None) == (directory is None):
        raise TypeError("give exactly one of store or directory")
    now = now or utcnow()
    kind = datamap.policy.subject_kind(subject_type).name
    subject_id = datamap.subject_key(subject_id, kind)
    target = store if store is not None else FolderStore(Path(directory or "."))
    result = build_user_export(
        datamap, subject_id, fmt=fmt, store=target, now=now, subject_type=kind
    )
    if store is not None:
        # A folder names the file by subject and second: a second export that second replaced it.
        session.execute(delete(UserExport).where(UserExport.location == result.location))
        session.add(
            UserExport(
                subject_id=str(subject_id), subject_type=kind, location=result.location,
                format=fmt, bytes=result.bytes, sha256=result.sha256, created_at=now,
            )
        )  # fmt: skip
    profiles, _ = ensure_profiles(session, kind, [str(subject_id)], now)
    record_event(
        session,
        actor=by,
        action="subject.exported",
        target_type="compliance_profile",
        target_id=profiles[str(subject_id)],
        details={"format": fmt, "bytes": result.bytes, "sha256": result.sha256},
    )
    session.commit()
    return result
