"""Helpers for the daemon's end-to-end tests: real ``mlworker run`` processes and their logs.

A test starts the reference server (``start_server`` in conftest), prepares it
with :func:`worker_server` (a worker account made with ``mlworker-server
adduser`` and a distinctive password, no pending jobs), submits jobs through
``worker.api.API`` as that admin, and runs the installed ``mlworker`` console
script as a real process (:func:`start_worker`) with its spool and cache in
the test's directory and the test plugins on ``PYTHONPATH``. The worker's
output goes to files; :meth:`Worker.events` reads its JSON log lines. Every
worker's output is checked for the password when its ``with`` block ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from conftest import RunningServer
from server_helpers import wait_for

from worker.api import API

__all__ = [
    "DEADLINE",
    "PLUGINS",
    "WORKER_PASSWORD",
    "WORKER_USER",
    "JobRow",
    "Worker",
    "admin_api",
    "assert_secret_absent",
    "clear_jobs",
    "mlworker_command",
    "run_mlworker",
    "spooled",
    "start_worker",
    "submit_jobs",
    "wait_for",
    "worker_environment",
    "worker_server",
]

PLUGINS = Path(__file__).parent / "plugins"
WORKER_USER = "e2e-worker"
# Distinctive, so that finding it in any captured output is a leak, never a coincidence.
WORKER_PASSWORD = "Quokka-7vX!e2e-Pw-93ZL"
DEADLINE = 120.0  # seconds a worker run may take; generous for a loaded 2-core machine
_INHERITED_OUT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY")

JobRow = tuple[str, str, Mapping[str, Any]] | tuple[str, str, Mapping[str, Any], int]


def worker_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account and no pending jobs."""
    server = start_server(demo=True)
    server.add_user(WORKER_USER, WORKER_PASSWORD, admin=True)
    clear_jobs(server)
    return server


def clear_jobs(server: RunningServer) -> None:
    """Delete every job on the server, so a test sees only its own."""
    server.shell("from server.models import Job; Job.objects.all().delete()")


def admin_api(host: str) -> API:
    """A session as the worker account (an admin), without retries."""
    return API(WORKER_USER, WORKER_PASSWORD, host, retry_for=0)


def submit_jobs(admin: API, jobs: Iterable[JobRow]) -> list[int]:
    """Submit ``(algorithm, dataset name, params[, time_limit])`` jobs in order; their ids."""
    ids = {info["name"]: key for key, info in admin.get_datasets().items()}
    submitted = []
    for algorithm, dataset, params, *limit in jobs:
        time_limit = limit[0] if limit else None
        submitted.append(admin.submit_job(algorithm, ids[dataset], params, time_limit=time_limit))
    return submitted


def spooled(workdir: Path) -> int:
    """How many results wait in the spool of the worker run in ``workdir``."""
    ready = workdir / "spool" / "ready"
    return sum(1 for entry in ready.iterdir() if entry.is_dir()) if ready.exists() else 0


def worker_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without MLWORKER_* and systemd's variables; plugins on the path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLWORKER_") and key not in _INHERITED_OUT
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["MLWORKER_PASSWORD"] = WORKER_PASSWORD
    env.update(extra or {})
    return env


def mlworker_command() -> list[str]:
    """The ``mlworker`` console script installed next to this Python."""
    script = Path(sys.executable).parent / "mlworker"
    if script.exists():
        return [str(script)]
    found = shutil.which("mlworker")
    if found is None:
        pytest.fail("mlworker is not installed: run `pip install -e .`")
    return [found]


def run_mlworker(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``mlworker ARGS`` to its end (for runs that stop at once); output captured."""
    return subprocess.run(
        [*mlworker_command(), *args],
        capture_output=True,
        text=True,
        env=worker_environment(env),
        timeout=timeout,
        check=False,
    )


def assert_secret_absent(*outputs: str) -> None:
    """The worker's password appears in none of ``outputs``."""
    for output in outputs:
        assert WORKER_PASSWORD not in output, "the password leaked into a log:\n" + output


class Worker:
    """One ``mlworker run`` process in its own session; stdout and stderr go to files."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path) -> None:
        number = len(list(workdir.glob("worker-*.err"))) + 1
        self.stdout_path = workdir / f"worker-{number}.out"
        self.stderr_path = workdir / f"worker-{number}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=err, env=env, start_new_session=True
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()
        if exc_type is None:
            assert_secret_absent(self.output())

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the worker still runs."""
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the worker process alone (as systemd's KillMode=mixed does)."""
        self.process.send_signal(signum)

    def wait(self, deadline: float = DEADLINE) -> int:
        """The worker's exit status; fails the test (with its log) if it runs past ``deadline``."""
        try:
            return self.process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the worker still ran after {deadline} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the worker's whole process group if it still runs."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        """Everything the worker wrote, stdout then stderr."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """The worker's JSON log lines, optionally those of ``event`` with these fields."""
        lines = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if event is not None and record.get("event") != event:
                continue
            if all(record.get(key) == value for key, value in match.items()):
                lines.append(record)
        return lines

    def tail(self, lines: int = 40) -> str:
        """The end of the worker's stderr, for failure messages."""
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])


def start_worker(
    workdir: Path,
    host: str,
    *flags: str,
    burst: bool = True,
    env: Mapping[str, str] | None = None,
) -> Worker:
    """Start ``mlworker run`` against ``host`` with spool and cache in ``workdir``.

    Polls quickly (0.2 to 1 s), starts at once, logs JSON, logs in as the test
    worker account (the password in ``MLWORKER_PASSWORD``); ``flags`` come last.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        *mlworker_command(),
        "run",
        *(["--burst"] if burst else []),
        "--host",
        host,
        "--username",
        WORKER_USER,
        "--spool-dir",
        str(workdir / "spool"),
        "--cache-dir",
        str(workdir / "cache"),
        "--startup-jitter",
        "0",
        "--poll-min",
        "0.2",
        "--poll-max",
        "1",
        "--log-format",
        "json",
        *flags,
    ]
    return Worker(args, worker_environment(env), workdir)
