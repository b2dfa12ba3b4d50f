"""The reference server's Django, in this test process, for fast test-client tests.

:func:`django_in_process` configures the server's settings once per process with a data
directory under the test's temporary directory (the environment is restored at once, so
servers and workers started later by other tests see none of it), then creates a fresh
in-memory SQLite test database with every migration. :func:`rolled_back` runs a test in a
transaction that is rolled back, so the module's data stays as the fixture made it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import django

_SETTINGS = {"DJANGO_SETTINGS_MODULE": "server.settings", "DATABASE_URL": ""}


@contextmanager
def django_in_process(data_dir: Path) -> Iterator[None]:
    """Set Django up with a fresh test database; tear the database down afterwards."""
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    env = {**_SETTINGS, "MLWORKER_SERVER_DATA_DIR": str(data_dir)}
    with mock.patch.dict(os.environ, env):
        django.setup()
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(databases, verbosity=0)
        teardown_test_environment()


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run the block in a transaction that is rolled back at its end."""
    from django.db import transaction

    with transaction.atomic():
        yield
        transaction.set_rollback(True)
