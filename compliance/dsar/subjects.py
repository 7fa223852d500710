"""Who a request is about: the data subject found in the application database, by their key
or their email, and the country that picks the law their request falls under.

Read live from the ``[subjects]`` table on each intake: the compliance database keeps only the
key, never a copy of the subject's row.
"""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, Table, func, select

from compliance.emails import check_email
from compliance.errors import ConfigError, Conflict, InvalidInput, NotFound
from compliance.policy.datamap import normalise_subject_key
from compliance.policy.model import Policy


def _subjects_table(policy: Policy, app_engine: Engine) -> Table:
    meta = MetaData()
    meta.reflect(bind=app_engine, only=[policy.subjects.table])
    return meta.tables[policy.subjects.table]


def resolve_subject(
    policy: Policy, app_engine: Engine, *, subject_id: str | None, email: str | None
) -> tuple[str, str | None]:
    """The subject's key and email in the application database, found by id or by email."""
    if (subject_id is None) == (email is None):
        raise InvalidInput("give exactly one of a subject id or an email")
    subjects = policy.subjects
    table = _subjects_table(policy, app_engine)
    key_col = table.c[subjects.key]
    email_col = table.c[subjects.email] if subjects.email else None
    columns = [key_col] + ([email_col] if email_col is not None else [])
    if email is not None:
        address = check_email(email, "email")
        if email_col is None:
            raise InvalidInput("[subjects] has no email column, so give the subject id")
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


def subject_country(policy: Policy, app_engine: Engine, subject_key: str) -> str | None:
    """The subject's ``[subjects] jurisdiction_column`` value, which picks its jurisdiction."""
    column = policy.subjects.jurisdiction_column
    if column is None:
        return None
    table = _subjects_table(policy, app_engine)
    if column not in table.c:  # jobs that only log a request do not check the whole policy
        raise ConfigError(
            f"subjects.jurisdiction_column: table '{table.name}' has no column '{column}'"
        )
    _, value = normalise_subject_key(table.c[policy.subjects.key], subject_key)
    with app_engine.connect() as conn:
        found = conn.scalar(select(table.c[column]).where(table.c[policy.subjects.key] == value))
    return None if found is None else str(found)
