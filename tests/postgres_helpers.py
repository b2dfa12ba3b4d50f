"""A throw-away PostgreSQL cluster for tests: ``initdb`` and ``pg_ctl`` in a temporary directory.

PostgreSQL refuses to run as root, so a root test run (CI) starts the cluster as the
``postgres`` system account that Debian's package creates, through ``runuser``; anyone else
runs it as themselves. The cluster listens on no TCP port, only on a unix socket in its own
directory: parallel test processes never race for a port and nothing beyond this machine can
reach it. Local connections are trusted (no password), and ``fsync`` is off: the cluster is
deleted at the end, so durability buys nothing but time.

``require_postgres()`` finds the binaries and the driver, or skips with the reason on a
developer's machine without PostgreSQL or the ``postgres`` extra; under ``CI`` either missing
fails instead, so CI can never pass by skipping these tests.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

SERVICE_ACCOUNT = "postgres"  # the system account that runs the cluster when we are root
SUPERUSER = "postgres"  # the cluster's superuser role, whoever runs it
COMMAND_DEADLINE = 60
# Not $TMPDIR: a socket path must stay under ~100 bytes, and the postgres account must be
# able to reach the directory (root's private temporary directories would not do).
BASE_DIR = "/tmp" if os.path.isdir("/tmp") else None


def in_ci() -> bool:
    """Whether the ``CI`` environment variable says this is a CI run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _version(initdb: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", initdb.parent.parent.name))


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian), else ``initdb`` on ``PATH``."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if installed:
        return installed[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def require_postgres() -> Path:
    """The directory of ``initdb``/``pg_ctl``; skip (fail under ``CI``) without PostgreSQL."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        reason = (
            "PostgreSQL is not installed: no initdb in /usr/lib/postgresql/*/bin or on PATH "
            "(apt-get install postgresql)"
        )
        if in_ci():
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL tests must run")
        pytest.skip(reason)
    if importlib.util.find_spec("psycopg") is None:
        reason = "the psycopg driver is missing: pip install -e '.[postgres]'"
        if in_ci():
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL tests must run")
        pytest.skip(reason)
    return bin_dir


def _check_service_account() -> None:
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        pytest.fail(
            f"running as root, but there is no {SERVICE_ACCOUNT!r} account to run PostgreSQL "
            "as (Debian's postgresql package creates it)"
        )


class PostgresCluster:
    """One running cluster in a temporary directory; ``stop()`` removes every trace of it."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _check_service_account()
        self.root = Path(tempfile.mkdtemp(prefix="mlworker-pg-", dir=BASE_DIR))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        if self.as_root:  # PostgreSQL runs only as the owner of its directory
            shutil.chown(self.root, SERVICE_ACCOUNT, SERVICE_ACCOUNT)

    def _run(self, program: str, *args: str) -> None:
        """Run a PostgreSQL program as the cluster's owner; fail with its output and log."""
        command = [str(self.bin_dir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVICE_ACCOUNT, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_DEADLINE, check=False
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            pytest.fail(f"{program} {' '.join(args)} failed:\n{result.stderr}\n{log}")

    def start(self) -> None:
        """``initdb`` (trust auth, UTF-8) and ``pg_ctl start``, waiting until it accepts."""
        self._run(
            "initdb",
            *("--pgdata", str(self.data_dir), "--username", SUPERUSER, "--auth", "trust"),
            *("--encoding", "UTF8", "--locale", "C", "--no-sync"),
        )
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "max_connections": "100",
        }
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        self._run(
            "pg_ctl",
            *("--pgdata", str(self.data_dir), "--log", str(self.log_path)),
            *("--options", options, "--wait", "--timeout", str(COMMAND_DEADLINE), "start"),
        )

    def stop(self) -> None:
        """Stop the cluster (fast shutdown: sessions are cut) and delete its directory."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "--pgdata", str(self.data_dir), "--mode", "fast", "--wait", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """A ``DATABASE_URL`` for ``database`` through the cluster's socket directory."""
        return f"postgres://{SUPERUSER}@{quote(str(self.root), safe='')}/{database}"

    def query(self, database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement in ``database`` (autocommit); its rows, if it returns any."""
        import psycopg

        conninfo = {"host": str(self.root), "user": SUPERUSER, "dbname": database}
        with psycopg.connect(**conninfo, autocommit=True) as connection:
            cursor = connection.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """Create an empty database; its ``DATABASE_URL``."""
        self.query("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started cluster (skipped without PostgreSQL, see ``require_postgres``), then removed."""
    cluster = PostgresCluster(require_postgres())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
