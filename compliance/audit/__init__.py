"""The hash-chained audit trail: evidence that nothing was rewritten."""
