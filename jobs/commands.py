"""Importing this module registers every command on the ``cli`` group."""

from jobs import (  # noqa: F401
    apply_deletions,
    create_deletion_batches,
    create_deletion_records,
    init_db,
    purge_compliance_data,
    review_batch,
    verify_audit_log,
)
