"""Who a request is about: the data subject found in the application database, by their key
or their email, and the country that picks the law their request falls under.

Read live from the subjects table of their kind on each intake: the compliance database keeps
only the key, never a copy of the subject's row.
"""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, Table, func, select

from compliance.emails import check_email
from compliance.errors import ConfigError, Conflict, InvalidInput, NotFound
from compliance.policy.datamap import normalise_subject_key
from compliance.policy.model import Policy, Subjects, subjects_section


def _subjects_table(app_engine: Engine, subjects: Subjects) -> Table:
    meta = MetaData()
    meta.reflect(bind=app_engine, only=[subjects.table])
    return meta.tables[subjects.table]


def resolve_subject(
    policy: Policy,
    app_engine: Engine,
    *,
    subject_id: str | None,
    email: str | None,
    subject_type: str | None = None,
) -> tuple[str, str | None]:
    """The subject's key and email in the application database, found by id or by email
    among the subjects of ``subject_type`` (which a policy of one kind may leave out)."""
    if (subject_id is None) == (email is None):
        raise InvalidInput("give exactly one of a subject id or an email")
    subjects = policy.subject_kind(subject_type)
    table = _subjects_table(app_engine, subjects)
    key_col = table.c[subjects.key]
    email_col = table.c[subjects.email] if subjects.email else None
    columns = [key_col] + ([email_col] if email_col is not None else [])
    if email is not None:
        address = check_email(email, "email")
        if email_col is None:
            raise InvalidInput(
                f"[{subjects_section(subjects)}] has no email column, so give the subject id"
            )
        query = select(*columns).where(func.lower(email_col) == address)
        what = f"with email '{address}'"
    else:
        subject_id, value = normalise_subject_key(key_col, subject_id)
        query = select(*columns).where(key_col == value)
        what = f"with id '{subject_id}'"
    with app_engine.connect() as conn:
        rows = conn.execute(query.limit(2)).all()
    if not rows:
        raise NotFound(f"no data subject {what} in {subjects.table}")
    if len(rows) > 1:
        raise Conflict(f"more than one data subject {what}; give the subject id")
    row = rows[0]
    return str(row[0]), (row[1] if email_col is not None else None)


def kinds_with_email(policy: Policy, app_engine: Engine, email: str) -> list[str]:
    """The kinds of data subject (policy order) with someone of this email: a person who is
    a customer and an employee is both, and each kind's data is asked about on its own."""
    address = check_email(email, "email")
    found = []
    for name, subjects in policy.subject_types.items():
        if not subjects.email:
            continue
        column = _subjects_table(app_engine, subjects).c[subjects.email]
        with app_engine.connect() as conn:
            if conn.scalar(select(column).where(func.lower(column) == address).limit(1)):
                found.append(name)
    if not found:
        tables = ", ".join(s.table for s in policy.subject_types.values() if s.email)
        raise NotFound(f"no data subject with email '{address}' in {tables or 'any table'}")
    return found


def subject_country(
    policy: Policy, app_engine: Engine, subject_key: str, subject_type: str | None = None
) -> str | None:
    """The subject's ``jurisdiction_column`` value (of their kind), which picks their
    jurisdiction."""
    subjects = policy.subject_kind(subject_type)
    column = subjects.jurisdiction_column
    if column is None:
        return None
    table = _subjects_table(app_engine, subjects)
    if column not in table.c:  # jobs that only log a request do not check the whole policy
        raise ConfigError(
            f"{subjects_section(subjects)}.jurisdiction_column: table '{table.name}' has no "
            f"column '{column}'"
        )
    _, value = normalise_subject_key(table.c[subjects.key], subject_key)
    with app_engine.connect() as conn:
        found = conn.scalar(select(table.c[column]).where(table.c[subjects.key] == value))
    return None if found is None else str(found)
