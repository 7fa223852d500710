"""Per-system tasks: a deletion record or DSAR request is done only when every system says so."""
