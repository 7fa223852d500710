"""What keeps the jobs running: alerts, retention cleanup, job runs, locks."""
