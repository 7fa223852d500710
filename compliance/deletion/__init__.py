"""From due subjects to erased rows: rules, records, batches, apply, purge."""
