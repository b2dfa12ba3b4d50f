"""A worker that cannot work as configured exits 78 (EX_CONFIG) with one line, never the password.

Real `mlworker run` processes with bad flags, environment or files, and one
with a wrong password against the real server. The worker account's password
is distinctive (``daemon_helpers.WORKER_PASSWORD``), and the wrong one
contains it, so any leak into stdout or stderr is found.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import (
    WORKER_PASSWORD,
    WORKER_USER,
    assert_secret_absent,
    run_mlworker,
)

pytestmark = pytest.mark.slow

EX_CONFIG = 78
WRONG_PASSWORD = WORKER_PASSWORD + "-typo"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A server with the test worker account (no demo data needed)."""
    server = start_server(demo=False)
    server.add_user(WORKER_USER, WORKER_PASSWORD, admin=True)
    return server


def dirs(tmp_path: Path) -> list[str]:
    """Spool and cache flags inside the test's directory."""
    return ["--spool-dir", str(tmp_path / "spool"), "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        ([], {"MLWORKER_POLL_MIN": "abc"}, "MLWORKER_POLL_MIN='abc' is not a number"),
        (["--config", "{tmp}/missing.toml"], {}, "missing.toml does not exist"),
        (["--host", "ftp://example.org/"], {}, "--host='ftp://example.org/'"),
        (["--host", "localhost:8000"], {}, "--host='localhost:8000'"),
        (["--memory-limit", "lots"], {}, "--memory-limit='lots' is not a size"),
        (["--password-file", "{tmp}/no-password"], {}, "no-password"),
        ([], {"MLWORKER_PASSWORD_FILE": "{tmp}/pw"}, "MLWORKER_PASSWORD_FILE are both set"),
    ],
    ids=[
        "env-poll-min",
        "missing-config",
        "ftp-host",
        "schemeless-host",
        "memory",
        "pw-file",
        "both",
    ],
)
def test_invalid_configuration_exits_78_with_one_line(
    tmp_path: Path, flags: list[str], env: dict[str, str], named: str
) -> None:
    """Each invalid setting stops `mlworker run` with 78 and one stderr line naming it."""
    (tmp_path / "pw").write_text(WORKER_PASSWORD)
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    env = {key: value.replace("{tmp}", str(tmp_path)) for key, value in env.items()}
    result = run_mlworker("run", "--burst", *dirs(tmp_path), *flags, env=env)
    assert result.returncode == EX_CONFIG, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlworker: invalid configuration: ")
    assert named in lines[0]
    assert_secret_absent(result.stdout, result.stderr)


def test_wrong_password_exits_78_without_the_password(
    server: RunningServer, tmp_path: Path
) -> None:
    """The real server refuses the login: exit 78, one line saying so, no password anywhere."""
    flags = ["--host", server.url, "--username", WORKER_USER, "--startup-jitter", "0"]
    result = run_mlworker(
        "run",
        "--burst",
        "--log-format",
        "json",
        *flags,
        *dirs(tmp_path),
        env={"MLWORKER_PASSWORD": WRONG_PASSWORD},
    )
    assert result.returncode == EX_CONFIG, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    event = json.loads(lines[0])
    assert event["event"] == "cannot start"
    assert f"refused the login of {WORKER_USER!r}" in event["reason"]
    assert_secret_absent(result.stdout, result.stderr)


def test_check_logs_in_and_lists_algorithms(server: RunningServer, tmp_path: Path) -> None:
    """`mlworker check` with the right password: exit 0, plugins listed, no password printed."""
    password_file = tmp_path / "password"
    password_file.write_text(WORKER_PASSWORD + "\n")
    flags = ["--host", server.url, "--username", WORKER_USER]
    result = run_mlworker("check", *flags, "--password-file", str(password_file), *dirs(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"login: ok as {WORKER_USER!r}" in result.stdout
    assert "test_slow_ok" in result.stdout  # the plugins on PYTHONPATH
    assert_secret_absent(result.stdout, result.stderr)
