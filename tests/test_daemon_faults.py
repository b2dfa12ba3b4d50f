"""Transient faults between worker and server: no result lost, none twice, the worker stays up.

`mlworker run --burst` talks to the real server through ``tests/fault_proxy.py``,
which answers a seeded quarter of all requests with a fault instead of
forwarding them (5xx, a dropped connection, ``429`` with ``Retry-After``, an
expired session as ``401`` or as a redirect to ``login/``) and drops or fails
the answer to half of the result uploads after the server has processed them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import JobRow, admin_api, spooled, start_worker, submit_jobs, worker_server
from fault_proxy import AFTER_KINDS, BEFORE_KINDS, FaultProxy

pytestmark = pytest.mark.slow

FAULT_RATE = 0.25
AFTER_RATE = 0.5
SEED = 20240611  # its 9th fault falls on request 29: every kind is dealt in any run
JOBS: tuple[JobRow, ...] = (
    ("test_ok", "iris", {}),
    ("knn", "iris", {"n_neighbors": 5}),
    ("test_ok", "moons", {}),
    ("knn", "moons", {"n_neighbors": 7}),
    ("linear_regression", "diabetes", {}),
    ("kmeans", "blobs", {"n_clusters": 3, "n_init": 3}),
)


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The module's server: demo data, the test worker account, no jobs yet."""
    return worker_server(start_server)


def test_transient_faults_lose_no_result_and_deliver_none_twice(
    server: RunningServer, tmp_path: Path
) -> None:
    """Under injected faults every job is done once, on its first claim, and the burst ends 0."""
    admin = admin_api(server.url)
    jobs = submit_jobs(admin, JOBS)
    with (
        FaultProxy(server.url, rate=FAULT_RATE, after_rate=AFTER_RATE, seed=SEED) as proxy,
        start_worker(tmp_path, proxy.url) as worker,
    ):
        assert worker.wait() == 0, worker.tail()
    injected = proxy.injected()
    assert set(BEFORE_KINDS) <= set(injected), injected  # every kind of fault was met
    assert sum(injected[kind] for kind in AFTER_KINDS) >= 1, injected

    results = {job: admin.get_job_result(job) for job in jobs}
    assert {job: r["status"] for job, r in results.items()} == dict.fromkeys(jobs, "done")
    assert {job: r["attempt"] for job, r in results.items()} == dict.fromkeys(jobs, 1)
    for job in jobs:
        updates = proxy.results(job)
        assert updates, f"job {job}: no update reached the server"
        assert all(e.upstream_status == 200 for e in updates), f"job {job}: {updates}"
        delivered = worker.events("result delivered", job_id=job)
        answer_lost = any(e.fault in AFTER_KINDS for e in updates)
        assert [e["duplicate"] for e in delivered] == [answer_lost], f"job {job}: {updates}"
    assert spooled(tmp_path) == 0
    assert not list((tmp_path / "spool" / "corrupt").iterdir())
