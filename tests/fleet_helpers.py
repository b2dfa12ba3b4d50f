"""Helpers for the fleet tests (supervisor, notify, metrics), on top of ``daemon_helpers``.

- ``install_gate_plugin(directory)`` writes a real plugin distribution (a package and its
  ``dist-info``, as pip leaves them) registering ``test_gate``: a classifier whose ``fit``
  records that it started, then waits until its gate is opened. Tests hold jobs running
  with it for as long as they need, instead of guessing how long a job takes.
- ``Gates`` opens gates and lists the fits waiting behind them; ``start_fleet`` starts
  ``mlworker run`` (``daemon_helpers.start_worker``) with the gate plugin on its path.
- ``children``/``workers``/``parent`` read ``/proc``; ``server_jobs`` reads the server's jobs
  through its ORM (``mlworker-server manage shell``), for what the protocol does not
  expose: the ``X-Worker`` name the server recorded when the job was claimed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import RunningServer
from daemon_helpers import DEADLINE, PLUGINS, Worker, start_worker, wait_for

from worker.api import API

GATES_VARIABLE = "MLWORKER_TEST_GATES"
ALL_GATES = "all"  # a gate file of this name opens every gate

GATE_PLUGIN = '''"""test_gate: its fit waits until $MLWORKER_TEST_GATES/<gate> exists."""

import contextlib
import json
import os
import signal
import time
from multiprocessing import parent_process
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class GateClassifier(ClassifierMixin, BaseEstimator):
    """Waits in fit for its gate, then predicts the first training class."""

    def __init__(self, gate="open"):
        self.gate = gate

    def fit(self, X, y):
        gates = Path(os.environ["MLWORKER_TEST_GATES"])
        started = {
            "pid": os.getpid(),
            "worker": parent_process().pid,  # the job process's parent is the forkserver
            "notify_socket": os.environ.get("NOTIFY_SOCKET"),
        }
        marker = gates / f"{self.gate}.started.{os.getpid()}"
        partial = gates / f".{marker.name}.tmp"  # its own, and outside the markers' glob
        partial.write_text(json.dumps(started))
        partial.replace(marker)
        while not (gates / self.gate).exists() and not (gates / "all").exists():
            time.sleep(0.05)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])
'''


def install_gate_plugin(directory: Path) -> Path:
    """Write the ``test_gate`` plugin distribution into ``directory`` (for PYTHONPATH)."""
    package = directory / "mlworker_fleet_gate"
    dist_info = directory / "mlworker_fleet_gate-1.0.dist-info"
    package.mkdir(parents=True)
    dist_info.mkdir()
    (package / "__init__.py").write_text(GATE_PLUGIN)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mlworker-fleet-gate\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[mlworker.algorithms]\ntest_gate = mlworker_fleet_gate:GateClassifier\n"
    )
    (dist_info / "RECORD").write_text("")
    return directory


class Gates:
    """The gate directory the ``test_gate`` jobs wait on, and the plugin that reads it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "gates"
        self.directory.mkdir(parents=True)
        self.plugin_path = install_gate_plugin(directory / "plugin")

    def open(self, name: str = ALL_GATES) -> None:
        """Let the jobs behind gate ``name`` (every gate by default) finish their fit."""
        (self.directory / name).touch()

    def started(self, name: str) -> list[dict[str, Any]]:
        """What each fit that began behind gate ``name`` recorded (its pid, its worker's pid,
        NOTIFY_SOCKET)."""
        markers = sorted(self.directory.glob(f"{name}.started.*"))
        return [json.loads(path.read_text()) for path in markers]

    def environment(self, **extra: str) -> dict[str, str]:
        """Environment for ``mlworker run``: the gate plugin and the test plugins on the path."""
        path = os.pathsep.join([str(self.plugin_path), str(PLUGINS)])
        return {"PYTHONPATH": path, GATES_VARIABLE: str(self.directory), **extra}


def open_gates_and_end(directory: Path) -> Iterator[Gates]:
    """Body of a ``gates`` fixture: Gates in ``directory``; at the end, every gate opens and
    every process left of the test's fleets ends (workers whose supervisor was SIGKILLed)."""
    gates = Gates(directory)
    yield gates
    gates.open()
    for pid in processes_in(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes_in(directory: Path) -> list[int]:
    """Processes whose command line names ``directory`` (a fleet's spool is in it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(directory).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # it just ended
    return found


def start_fleet(
    workdir: Path, host: str, gates: Gates, processes: int, *flags: str, **env: str
) -> Worker:
    """``mlworker run --processes N`` (not burst) that can run ``test_gate`` jobs."""
    flags = ("--processes", str(processes), *flags)
    return start_worker(workdir, host, *flags, burst=False, env=gates.environment(**env))


def children(pid: int) -> set[int]:
    """The children of ``pid``, from ``/proc/<pid>/task/*/children``."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread or the process just ended
    return found


def parent(pid: int) -> int:
    """The parent of ``pid``, from ``/proc/<pid>/stat`` (the fields after the name)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (orphans' zombies may linger)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def command_line(pid: int) -> bytes:
    """The command line of ``pid``, its arguments NUL-separated; empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def workers(supervisor: int) -> set[int]:
    """The running worker processes of ``supervisor``: its children but zombies and
    multiprocessing's helpers (the job forkserver, the resource tracker), which run
    ``python -c 'from multiprocessing...'``."""
    return {
        pid
        for pid in children(supervisor)
        if running(pid) and b"from multiprocessing" not in command_line(pid)
    }


def server_jobs(server: RunningServer) -> dict[int, dict[str, Any]]:
    """Every job on the server by id: status, attempt, worker (its X-Worker), message."""
    code = (
        "import json; from server.models import Job; print(json.dumps(list("
        "Job.objects.values('id', 'status', 'attempt', 'worker', 'message'))))"
    )
    rows = json.loads(server.shell(code).splitlines()[-1])
    return {row["id"]: row for row in rows}


def per_job(worker: Worker, event: str) -> Counter[int]:
    """How many of the worker's ``event`` log lines name each job id."""
    return Counter(int(line["job_id"]) for line in worker.events(event) if "job_id" in line)


def wait_final(admin: API, job_id: int, deadline: float = DEADLINE) -> dict[str, Any]:
    """The job's result once it is done or failed."""

    def final() -> dict[str, Any] | None:
        result = admin.get_job_result(job_id)
        return result if result["status"] in ("done", "failed") else None

    result = wait_for(final, f"job {job_id} to finish", deadline)
    assert result is not None
    return result


def dataset_ids(api: Any) -> dict[str, int]:
    """The server's datasets: name -> id."""
    return {info["name"]: key for key, info in api.get_datasets().items()}
