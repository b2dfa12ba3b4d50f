"""``mlworker-server`` itself: adduser, argument errors, the ready line, a data dir per run.

``import-dataset`` is tested in test_server_import.py, ``run --demo`` in test_server_demo.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer, server_command, server_env

from worker.errors import AuthenticationError, PermissionDeniedError

pytestmark = pytest.mark.slow  # a real server process, and its command line


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(demo=False)


def test_run_prints_its_url_and_makes_the_data_dir(server: RunningServer) -> None:
    """run announces its URL on one line and creates database, secret key and WAL mode."""
    assert re.search(rf"serving on http://127\.0\.0\.1:{server.port}/\n", server.log())
    assert (server.data_dir / "db.sqlite3").exists()
    assert (server.data_dir / "secret_key").stat().st_mode & 0o077 == 0
    mode = server.shell(
        "from django.db import connection; c = connection.cursor(); "
        "print(c.execute('PRAGMA journal_mode').fetchone()[0])"
    )
    assert mode == "wal"


def test_adduser_from_password_file_and_admin_flag(server: RunningServer) -> None:
    """adduser creates a user who can log in; --admin gives admin rights."""
    server.add_user("ada", "lovelace")
    server.add_user("root", "hunter22", admin=True)
    with pytest.raises(PermissionDeniedError):
        server.api("ada", "lovelace").request_job()
    assert server.api("root", "hunter22").request_job() is None


def test_adduser_again_changes_the_password(server: RunningServer) -> None:
    """adduser on an existing name sets its new password (the old one stops working)."""
    server.add_user("grace", "first-password")
    server.add_user("grace", "second-password")
    server.api("grace", "second-password")
    with pytest.raises(AuthenticationError):
        server.api("grace", "first-password")


def test_adduser_reads_the_password_from_the_prompt(server: RunningServer) -> None:
    """Without --password-file the password comes from the prompt (stdin here)."""
    result = server.cli("adduser", "prompted", stdin="from-stdin\n")
    assert "added user prompted" in result.stdout
    server.api("prompted", "from-stdin")


def test_adduser_refuses_missing_file_and_empty_password(
    server: RunningServer, tmp_path: Path
) -> None:
    """A missing password file or an empty password exits 1 with a message; no user."""
    missing = server.cli(
        "adduser", "nobody", "--password-file", str(tmp_path / "none"), check=False
    )
    assert missing.returncode == 1
    assert "cannot read the password file" in missing.stderr
    empty_file = tmp_path / "empty"
    empty_file.write_text("\n")
    empty = server.cli("adduser", "nobody", "--password-file", str(empty_file), check=False)
    assert empty.returncode == 1
    assert "the password is empty" in empty.stderr
    assert (
        server.shell(
            "from django.contrib.auth.models import User; "
            "print(User.objects.filter(username='nobody').exists())"
        )
        == "False"
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["run", "--bind", "localhost"], "--bind"),
        (["run", "--bind", "127.0.0.1:99999"], "--bind"),
        (["run", "--lease-grace", "-1"], "--lease-grace"),
        (["run", "--workers", "0"], "--workers"),
        (["adduser"], "name"),
        (["adduser", "x", "--password", "secret"], "unrecognized arguments"),
        (["import-dataset", "f.csv", "--name", "n", "--task", "ranking"], "--task"),
        (
            ["import-dataset", "f.csv", "--name", "n", "--task", "regression", "--split", "1,2"],
            "--split",
        ),
        (["import-dataset", "f.csv", "--task", "regression"], "--name"),
        (["serve"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    args: list[str], complaint: str, tmp_path: Path
) -> None:
    """Bad arguments are argparse errors (exit 2) that name what is wrong."""
    result = subprocess.run(
        [*server_command(), *args],
        capture_output=True,
        text=True,
        env={**server_env(), "MLWORKER_SERVER_DATA_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert complaint in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()
