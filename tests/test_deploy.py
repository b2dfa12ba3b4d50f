"""The systemd units and example config in deploy/: systemd accepts and scores the units,
and units, config and worker settings agree."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import (
    DEFAULT_CONFIG,
    SETTINGS,
    add_settings_arguments,
    load_settings,
)

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SERVICE = DEPLOY / "mlworker.service"
TEMPLATE = DEPLOY / "mlworker@.service"
EXAMPLE_CONFIG = DEPLOY / "worker.toml"
INSTALLED_PROGRAM = "/opt/mlworker/bin/mlworker"
MAX_EXPOSURE = 2.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (.ci/run installs it)"
)


def directives(unit: Path) -> list[tuple[str, str, str]]:
    """The unit's (section, key, value) lines in order, comments and blank lines dropped."""
    section = ""
    found = []
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def value_of(unit: Path, key: str) -> str:
    """The single value of ``key`` in ``unit``."""
    values = [value for _, name, value in directives(unit) if name == key]
    assert len(values) == 1, f"{unit.name}: expected one {key}=, found {values}"
    return values[0]


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze without colours or a pager, capturing its output."""
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_LEVEL": "info"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], env=env, capture_output=True, text=True, timeout=120
    )


def with_real_program(unit: Path, destination: Path) -> Path:
    """Copy ``unit`` to ``destination`` with ExecStart pointing at this checkout's program.

    verify refuses an ExecStart whose program does not exist, and /opt/mlworker is not
    installed here; every other line is verified exactly as shipped.
    """
    program = Path(sys.executable).with_name("mlworker")
    assert os.access(program, os.X_OK), f"{program} missing: is the project installed?"
    text = unit.read_text()
    assert value_of(unit, "ExecStart").startswith(INSTALLED_PROGRAM + " ")
    destination.write_text(text.replace(INSTALLED_PROGRAM, str(program)))
    return destination


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("unit", "name"), [(SERVICE, "mlworker.service"), (TEMPLATE, "mlworker@1.service")]
)
def test_systemd_analyze_verify_accepts_the_unit(unit: Path, name: str, tmp_path: Path) -> None:
    """systemd-analyze verify exits 0 and has nothing to say about the unit (no unknown or
    unparsable directive); the template is verified as an instance, as it runs."""
    copy = with_real_program(unit, tmp_path / name)
    result = analyze("verify", "--man=false", "--generators=false", str(copy))
    complaints = [line for line in result.stderr.splitlines() if name in line]
    assert (result.returncode, complaints) == (0, []), result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("unit", [SERVICE, TEMPLATE], ids=lambda unit: unit.name)
def test_systemd_analyze_security_rates_the_unit_ok(unit: Path) -> None:
    """systemd-analyze security --offline=true gives the shipped unit an exposure of at
    most 2.0, which it calls OK."""
    result = analyze("security", "--offline=true", "--no-pager", str(unit))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match is not None, result.stdout
    exposure, verdict = float(match.group(1)), match.group(2)
    assert exposure <= MAX_EXPOSURE, result.stdout
    assert verdict == "OK", result.stdout


def test_template_differs_from_the_service_only_in_description_and_processes() -> None:
    """The template is the service with one process per instance: no setting drifted."""
    ignored = {"Description", "ExecStart"}
    service = [line for line in directives(SERVICE) if line[1] not in ignored]
    template = [line for line in directives(TEMPLATE) if line[1] not in ignored]
    assert template == service
    assert value_of(TEMPLATE, "ExecStart") == value_of(SERVICE, "ExecStart") + " --processes 1"


def run_flags(unit: Path, config: Path) -> dict[str, object]:
    """ExecStart's arguments after ``run``, parsed by the worker's own settings flags, with
    ``--config`` redirected to ``config`` (the installed path does not exist here)."""
    program, command, *args = shlex.split(value_of(unit, "ExecStart"))
    assert (program, command) == (INSTALLED_PROGRAM, "run")
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    flags = vars(parser.parse_args(args))
    assert flags["config"] == str(DEFAULT_CONFIG)
    return {**flags, "config": str(config)}


@pytest.mark.parametrize(
    ("unit", "processes"), [(SERVICE, 4), (TEMPLATE, 1)], ids=["service", "template"]
)
def test_unit_runs_the_worker_with_the_shipped_config_and_credential(
    unit: Path, processes: int, tmp_path: Path
) -> None:
    """ExecStart's flags are the worker's own and name its default config file; the template
    runs one process whatever the config says; LoadCredential's name is the file the worker
    reads the password from."""
    credential, _, _source = value_of(unit, "LoadCredential").partition(":")
    (tmp_path / credential).write_text("s3cret\n")
    settings = load_settings(
        run_flags(unit, EXAMPLE_CONFIG), {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    )
    assert settings.processes == processes
    assert settings.password.reveal() == "s3cret"
    assert settings.sources["password"].startswith("CREDENTIALS_DIRECTORY")


@pytest.mark.parametrize("unit", [SERVICE, TEMPLATE], ids=lambda unit: unit.name)
def test_stop_timeout_outlasts_the_job_time_limit(unit: Path) -> None:
    """TimeoutStopSec exceeds the job time limit the unit runs with, so a stop lets the
    running job finish and its result be delivered before systemd kills anything."""
    settings = load_settings(run_flags(unit, EXAMPLE_CONFIG), {})
    assert int(value_of(unit, "TimeoutStopSec")) > settings.time_limit
    assert value_of(unit, "KillMode") == "mixed"


def test_example_config_documents_every_setting() -> None:
    """deploy/worker.toml shows every setting the worker has, as a line ``name = ...``."""
    text = EXAMPLE_CONFIG.read_text()
    names = {s.name + ("_file" if s.secret else "") for s in SETTINGS}
    missing = sorted(n for n in names if not re.search(rf"^#?\s*{n} = ", text, re.MULTILINE))
    assert missing == []


def test_example_config_shows_the_real_defaults(tmp_path: Path) -> None:
    """Uncommenting every "# name = value" line of deploy/worker.toml changes nothing: the
    values it shows as defaults are the worker's defaults under systemd."""
    text = EXAMPLE_CONFIG.read_text()
    shown = re.findall(r"^# (\w+) = ", text, flags=re.MULTILINE)
    uncommented = tmp_path / "worker.toml"
    uncommented.write_text(re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE))
    systemd_env = {"STATE_DIRECTORY": "/var/lib/mlworker", "CACHE_DIRECTORY": "/var/cache/mlworker"}
    as_shipped = load_settings({"config": str(EXAMPLE_CONFIG)}, systemd_env)
    all_set = load_settings({"config": str(uncommented)}, systemd_env)
    assert shown
    assert [name for name in shown if all_set.sources[name] == "default"] == []
    assert dataclasses.replace(all_set, config_file=None) == dataclasses.replace(
        as_shipped, config_file=None
    )
