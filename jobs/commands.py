"""Importing this module registers every command on the ``cli`` group."""

from jobs import (  # noqa: F401
    alert_dsar_deadlines,
    alert_unreviewed_batches,
    api_key,
    apply_deletions,
    cleanup_expired_exports,
    create_deletion_batches,
    create_deletion_records,
    deliver_dsar,
    export_user_data,
    extend_dsar,
    init_db,
    process_dsar_requests,
    purge_compliance_data,
    retention_cleanup,
    retry_dsar,
    review_batch,
    review_dsar,
    submit_dsar,
    verify_audit_log,
)
