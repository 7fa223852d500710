"""The compliance database: engines, models, migrations."""
