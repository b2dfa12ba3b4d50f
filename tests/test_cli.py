"""The `mlworker` and `mlworker-server` commands explain themselves: version, usage, exit
statuses, one-sentence errors, warnings, a quiet closed pipe (issue: a newcomer's CLI)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import RunningServer, free_port, server_command
from daemon_helpers import mlworker_command, run_mlworker

from worker.cli import EXIT_STATUSES

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_version_on_both_commands() -> None:
    """--version prints the installed version and exits 0, for the worker and the server."""
    for command in (mlworker_command(), server_command()):
        done = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(f" {version('mlworker')}")


@pytest.mark.parametrize(
    ("command", "args", "usage"),
    [
        ("mlworker", ["run", "--bogus"], "usage: mlworker run "),
        ("mlworker", ["check", "--bogus", "x"], "usage: mlworker check "),
        ("mlworker-server", ["run", "--bogus"], "usage: mlworker-server run "),
    ],
)
def test_a_subcommand_error_shows_the_subcommands_usage(
    command: str, args: list[str], usage: str
) -> None:
    """An unknown flag of a subcommand is reported with that subcommand's usage, exit 2."""
    base = mlworker_command() if command == "mlworker" else server_command()
    done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(usage)
    assert f"{usage.split()[1]} {args[0]}: error: unrecognized arguments: {args[1]}" in done.stderr


def test_help_shows_each_exit_status_and_no_markup() -> None:
    """--help lists every exit status (69 too), as docs/configuration.md does; no reST markup."""
    assert {code for code, _ in EXIT_STATUSES} >= {0, 1, 2, 69, 78, 130, 141}
    docs = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for args in (["--help"], ["run", "--help"], ["check", "--help"]):
        text = run_mlworker(*args).stdout
        for code, meaning in EXIT_STATUSES:
            assert re.search(rf"^  {code} +{re.escape(meaning.splitlines()[0])}", text, re.M)
    for code, meaning in EXIT_STATUSES:
        assert f"| {code} | {' '.join(meaning.split())} |" in docs
    server_help = subprocess.run(
        [*server_command(), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "``" not in server_help
    assert "exit status: 0 done, 1 the command failed" in server_help


def test_check_with_the_server_down_is_one_sentence_and_69() -> None:
    """`mlworker check` against a closed port says "cannot reach URL: connection refused"."""
    host = f"http://127.0.0.1:{free_port()}/"
    done = run_mlworker("check", "--host", host)
    assert done.returncode == 69
    assert done.stdout.splitlines()[-1] == f"login: cannot reach {host}: connection refused"
    assert "Errno" not in done.stdout + done.stderr


def test_check_prints_configuration_warnings() -> None:
    """A misspelt MLWORKER_* variable and the default password beyond loopback are warned about."""
    env = {"MLWORKER_PROCESSSES": "3", "MLWORKER_PASSWORD": ""}
    done = run_mlworker("check", "--host", "http://jobs.example.invalid/", env=env)
    assert done.returncode == 69
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert (
        "MLWORKER_PROCESSSES is not a setting: ignored (did you mean MLWORKER_PROCESSES?)"
        in (warnings[0])
    )
    assert "the password is the demo's published default" in warnings[1]


@pytest.mark.slow
def test_check_with_a_wrong_password_says_so(demo_server: RunningServer) -> None:
    """A refused login reads "wrong username or password" and exits 78, masking nothing."""
    server = demo_server
    done = run_mlworker("check", "--host", server.url, env={"MLWORKER_PASSWORD": "wrong"})
    assert done.returncode == 78
    assert done.stdout.splitlines()[-1] == (
        f"login: refused: could not log in to {server.url} as 'backend': wrong username or "
        "password (the server answered its login page again)"
    )
    ok = run_mlworker("check", "--host", server.url, env={"MLWORKER_PASSWORD": "foobar"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "warning" not in ok.stdout


def test_closed_pipe_ends_quietly() -> None:
    """`mlworker algorithms | head -1`: no traceback when the reader goes away (exit 141)."""
    process = subprocess.Popen(
        [*mlworker_command(), "algorithms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # gone before the listing is written: as `head` after one line
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 141
    assert stderr == ""


@pytest.mark.slow
def test_import_dataset_answers_with_a_sentence(demo_server: RunningServer, tmp_path: Path) -> None:
    """import-dataset says which id, how many points per set and which version it made."""
    csv = tmp_path / "toy.csv"
    rows = [
        f"{i},{i % 3},{i % 2},{s}"
        for i, s in enumerate(["training"] * 5 + ["test"] * 3 + ["validation"] * 2)
    ]
    csv.write_text("x,y,label,set\n" + "\n".join(rows) + "\n", encoding="utf-8")
    done = demo_server.cli("import-dataset", str(csv), "--name", "toy", "--task", "classification")
    match = re.fullmatch(
        r"imported dataset (\d+) 'toy' \(classification\): "
        r"5 training, 3 test, 2 validation points; version (\w+)\n",
        done.stdout,
    )
    assert match, done.stdout
    info = demo_server.api("backend", "foobar").get_datasets()[int(match[1])]
    assert info["version"] == match[2]


def test_the_forkserver_launch_path_loads_no_heavy_module() -> None:
    """`mlworker run` launches its job forkserver before it loads structlog, requests or numpy.

    The forkserver's imports are the longest part of a worker's start; every module loaded
    before it is launched delays the first result (structlog alone by 0.15 s).
    """
    probe = (
        "import sys, worker.cli, worker.commands, worker.config, worker.jobforkserver; "
        "print(sorted({'structlog', 'requests', 'numpy'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
