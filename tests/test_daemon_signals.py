"""Stop signals to a real `mlworker run` during a job: finish and deliver, or abort and report.

The job is the ``test_slow_ok`` plugin: it writes ``slow_ok.json`` (its pid)
into ``$MLWORKER_TEST_PLUGIN_DIR`` when its fit starts, so the signal surely
arrives while the job runs, then sleeps ``seconds`` and succeeds.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import (
    admin_api,
    clear_jobs,
    spooled,
    start_worker,
    submit_jobs,
    wait_for,
    worker_server,
)

pytestmark = pytest.mark.slow

ABORT_DEADLINE = 15.0  # "exits within a few seconds" after the second signal, generously


@pytest.fixture(scope="module")
def module_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The module's server: demo data and the test worker account."""
    return worker_server(start_server)


@pytest.fixture
def server(module_server: RunningServer) -> RunningServer:
    """The module's server with no jobs left by an earlier test."""
    clear_jobs(module_server)
    return module_server


def job_pid(directory: Path) -> int:
    """Wait until the slow job's fit has started; its process id."""
    record = directory / "slow_ok.json"
    wait_for(record.exists, "the slow job to start", 120)
    return int(json.loads(record.read_text())["pid"])


def process_gone(pid: int) -> bool:
    """Whether no process has id ``pid`` any more (or only a zombie awaiting its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_first_sigterm_finishes_and_delivers_the_running_job(
    server: RunningServer, tmp_path: Path
) -> None:
    """SIGTERM during a job: it finishes and is delivered, nothing more is claimed, exit 0."""
    admin = admin_api(server.url)
    slow, waiting = submit_jobs(
        admin, [("test_slow_ok", "iris", {"seconds": 3}), ("test_ok", "iris", {})]
    )
    env = {"MLWORKER_TEST_PLUGIN_DIR": str(tmp_path)}
    with start_worker(tmp_path, server.url, burst=False, env=env) as worker:
        job_pid(tmp_path)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.tail()
    result = admin.get_job_result(slow)
    assert (result["status"], result["message"]) == ("done", ""), result
    assert result["score_test"] is not None
    assert admin.get_job_result(waiting)["status"] == "pending"
    assert spooled(tmp_path) == 0
    assert [e["outcome"] for e in worker.events("job finished")] == ["success"]
    assert [e["signal"] for e in worker.events("stop signal received")] == ["SIGTERM"]


def test_second_sigterm_aborts_the_job_and_reports_it_failed(
    server: RunningServer, tmp_path: Path
) -> None:
    """A second SIGTERM kills the running job, reports it failed ("worker shut down"), exit 0."""
    admin = admin_api(server.url)
    (slow,) = submit_jobs(admin, [("test_slow_ok", "iris", {"seconds": 600})])
    env = {"MLWORKER_TEST_PLUGIN_DIR": str(tmp_path)}
    with start_worker(tmp_path, server.url, burst=False, env=env) as worker:
        pid = job_pid(tmp_path)
        worker.signal(signal.SIGTERM)
        wait_for(lambda: worker.events("stop signal received"), "the first signal to be seen")
        assert worker.alive()
        worker.signal(signal.SIGTERM)
        assert worker.wait(ABORT_DEADLINE) == 0, worker.tail()
    result = admin.get_job_result(slow)
    assert (result["status"], result["message"]) == ("failed", "worker shut down"), result
    assert spooled(tmp_path) == 0
    wait_for(lambda: process_gone(pid), f"the job process {pid} to be gone", 10)
