"""`mlworker run` says when a job starts, and --log-level chooses what it logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer, free_port
from daemon_helpers import admin_api, start_worker, submit_jobs, wait_for, worker_server

pytestmark = pytest.mark.slow


def test_job_started_line_and_log_level(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """A job logs "job started" (its id, algorithm, dataset) before "job finished"; at
    --log-level warning neither appears."""
    server = worker_server(start_server)
    [job] = submit_jobs(admin_api(server.url), [("knn", "iris", {})])
    with start_worker(tmp_path / "info", server.url) as worker:
        assert worker.wait() == 0, worker.tail()
        events = [e["event"] for e in worker.events() if e.get("job_id") == job]
        assert events.index("job started") < events.index("job finished")
        [started] = worker.events("job started")
        assert (started["algorithm"], started["dataset_name"]) == ("knn", "iris")
    [quiet_job] = submit_jobs(admin_api(server.url), [("knn", "iris", {})])
    with start_worker(tmp_path / "quiet", server.url, "--log-level", "warning") as worker:
        assert worker.wait() == 0, worker.tail()
        assert admin_api(server.url).get_job_result(quiet_job)["status"] == "done"
        assert worker.events("job finished") == []
        assert {e["level"] for e in worker.events()} <= {"warning", "error", "critical"}


def test_run_with_the_server_down_says_so_in_one_sentence(tmp_path: Path) -> None:
    """`mlworker run` against a closed port logs "cannot reach URL: connection refused"."""
    host = f"http://127.0.0.1:{free_port()}/"
    with start_worker(tmp_path, host, burst=False) as worker:
        wait_for(lambda: worker.events("server unreachable; probing again"), "a failed probe")
        errors = {e["error"] for e in worker.events() if "error" in e}
        assert errors == {f"cannot reach {host}: connection refused"}
