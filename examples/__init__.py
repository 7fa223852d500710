"""Runnable examples that sit beside Privacy Desk (never imported by it)."""
