"""Scheduled command-line jobs: ``python -m jobs COMMAND``."""
