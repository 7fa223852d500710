"""The compliance database: engines, models, migrations."""

# Every table registers on one metadata (migrations, their check, the scan's own-table list):
# the tally tables live beside the code that reads them.
from compliance.store import models, tallies  # noqa: F401
