"""Read models the dashboard shows: review queue, progress, DSAR statistics."""
