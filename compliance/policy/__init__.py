"""The policy file, the data map it describes, and the anonymize strategies."""
