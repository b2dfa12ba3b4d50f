"""Names the protocol fixes, importable before Django is set up (the CLI needs them)."""

TASKS = ("classification", "regression", "clustering")
SETS = ("training", "test", "validation")
STATUSES = ("pending", "running", "done", "failed")
