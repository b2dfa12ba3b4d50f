"""Server and worker restarts: results wait in the spool and arrive exactly once; no give-up.

The server is the real one, stopped and started again on the same port and
database; the worker is a real process, stopped with SIGTERM and started again
on the same spool. A recording proxy in front of the server holds the
results back (it answers ``503`` to every update) until the restart, and
counts what the server received.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import (
    JobRow,
    admin_api,
    spooled,
    start_worker,
    submit_jobs,
    wait_for,
    worker_server,
)
from fault_proxy import RESULT, FaultProxy

pytestmark = pytest.mark.slow

JOBS: tuple[JobRow, ...] = (
    ("test_ok", "iris", {}),
    ("knn", "iris", {"n_neighbors": 3}),
    ("test_ok", "moons", {}),
)
PROBES = 3  # failed probes to see before starting the server


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The module's server: demo data, the test worker account, no jobs yet."""
    return worker_server(start_server)


def test_pending_results_survive_server_and_worker_restarts(
    server: RunningServer, tmp_path: Path
) -> None:
    """Results spooled while updates fail survive both restarts and each arrives exactly once."""
    admin = admin_api(server.url)
    jobs = submit_jobs(admin, JOBS)
    with FaultProxy(server.url) as proxy:
        proxy.unavailable = re.compile(RESULT)
        with start_worker(tmp_path, proxy.url, burst=False) as worker:
            wait_for(
                lambda: len(worker.events("job finished")) == len(jobs),
                "every job to be run",
                120,
            )
            assert spooled(tmp_path) == len(jobs)
            server.stop()
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0, worker.tail()
        assert spooled(tmp_path) == len(jobs)
        assert proxy.results() == []

        server.start()
        proxy.unavailable = None
        with start_worker(tmp_path, proxy.url) as restarted:
            assert restarted.wait() == 0, restarted.tail()
        for job in jobs:
            updates = proxy.results(job)
            assert [e.upstream_status for e in updates] == [200], f"job {job}: {updates}"
            delivered = restarted.events("result delivered", job_id=job)
            assert [e["duplicate"] for e in delivered] == [False]
    assert spooled(tmp_path) == 0
    results = [admin_api(server.url).get_job_result(job) for job in jobs]
    assert [r["status"] for r in results] == ["done"] * len(jobs)
    assert all(r["score_test"] is not None for r in results)
    assert restarted.events("job finished") == []  # nothing was run twice
    assert restarted.events("result dropped: the server will not take it") == []


def test_worker_keeps_probing_until_the_server_starts(
    server: RunningServer, tmp_path: Path
) -> None:
    """Started while the server is down, the worker stays up probing, then does the job."""
    admin = admin_api(server.url)
    (job,) = submit_jobs(admin, [("test_ok", "iris", {})])
    server.stop()
    with start_worker(tmp_path, server.url) as worker:
        wait_for(
            lambda: len(worker.events("server unreachable; probing again")) >= PROBES,
            f"{PROBES} failed probes",
            60,
        )
        assert worker.alive(), worker.tail()
        server.start()
        assert worker.wait() == 0, worker.tail()
    assert admin_api(server.url).get_job_result(job)["status"] == "done"
    assert [e["job_id"] for e in worker.events("result delivered")] == [job]
