"""`mlworker algorithms` lists every algorithm, as JSON or text, and reports broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from algorithm_data import install_teacher_plugins

from algorithms.builtin import BUILTINS
from worker.cli import main

MLWORKER = Path(sys.executable).parent / "mlworker"


def _mlworker(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script and capture its output."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(MLWORKER), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow  # an `mlworker` process
def test_json_lists_every_builtin_with_defaults() -> None:
    """--json prints one JSON list: every built-in with task, description, defaults, source."""
    done = _mlworker("algorithms", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [entry["name"] for entry in listed] == [a.name for a in BUILTINS]
    assert listed == [a.describe() for a in BUILTINS]
    knn = listed[0]
    assert knn["params"]["n_neighbors"] == 5
    assert knn["task"] == "classification"
    assert knn["source"] == "builtin"
    assert done.stderr == ""


@pytest.mark.slow  # an `mlworker` process
def test_text_lists_every_builtin() -> None:
    """Without --json, each algorithm gets a readable block: name, task, source, params."""
    done = _mlworker("algorithms")
    assert done.returncode == 0, done.stderr
    for algorithm in BUILTINS:
        assert f"{algorithm.name} ({algorithm.task}, builtin)\n" in done.stdout
    assert '  params: n_neighbors=5, weights="uniform", algorithm="auto"' in done.stdout


@pytest.mark.slow  # an `mlworker` process
def test_plugins_are_listed_and_broken_ones_reported_on_stderr(tmp_path: Path) -> None:
    """Installed plugins join the list; skipped ones go to stderr and the listing still succeeds."""
    install_teacher_plugins(tmp_path)
    done = _mlworker("algorithms", "--json", pythonpath=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {entry["name"]: entry for entry in json.loads(done.stdout)}
    assert listed["centroid"]["source"] == "plugin: mlw-teacher-plugins 1.0"
    assert listed["knn"]["source"] == "builtin"
    skipped = [line for line in done.stderr.splitlines() if line.startswith("mlworker: plugin")]
    assert len(skipped) == 3
    assert (
        "mlworker: plugin 'broken' (mlw_broken_plugin:Thing, plugin: mlw-broken-plugin 1.0) "
        "was skipped: ModuleNotFoundError: No module named 'mlw_no_such_module'"
    ) in skipped
    assert done.stderr.count("\n") == 3  # the reports only: no log lines repeating them


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a sub-command, mlworker prints its usage and exits 2."""
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "usage: mlworker [-h] [--version] COMMAND" in capsys.readouterr().err
