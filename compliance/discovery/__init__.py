"""Where personal data lives: the scan of every SQL system, its stored findings, the data map
page's read model and the Art. 30 record of processing generated from the policy."""
