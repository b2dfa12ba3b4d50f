"""The optional Prometheus endpoint of `mlworker run --metrics-port`, scraped for real."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from conftest import RunningServer, free_port
from daemon_helpers import admin_api, start_worker, submit_jobs, wait_for, worker_server
from fleet_helpers import wait_final

from worker.api import API

prometheus = pytest.importorskip("prometheus_client.parser")

pytestmark = pytest.mark.slow

STARTUP = 120.0
JOBS = [
    ("knn", "iris", {"n_neighbors": 3}),
    ("naive_bayes", "wine", {}),
    ("knn", "moons", {"n_neighbors": 0}),  # refused by scikit-learn's validation: "error"
    ("knn", "iris", {"n_neighbors": 7}),
]
EXPECTED = {
    ("mlworker_jobs_total", "knn", "success"): 2.0,
    ("mlworker_jobs_total", "naive_bayes", "success"): 1.0,
    ("mlworker_jobs_total", "knn", "error"): 1.0,
    ("mlworker_job_seconds_count", "knn", None): 3.0,
    ("mlworker_job_seconds_count", "naive_bayes", None): 1.0,
    ("mlworker_spool_results", None, None): 0.0,
}
_SERVER_ERRORS = ("mlworker_server_errors_total", None, None)


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account and no pending jobs."""
    return worker_server(start_server)


def scrape(port: int) -> dict[tuple[str, str | None, str | None], float]:
    """The endpoint's samples: (name, algorithm label, outcome label) -> value."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, sample.labels.get("algorithm"), sample.labels.get("outcome")): sample.value
        for family in prometheus.text_string_to_metric_families(text)
        for sample in family.samples
    }


def counted(port: int) -> dict[tuple[str, str | None, str | None], float]:
    """The samples of ``EXPECTED``'s keys (absent ones left out) plus the server errors."""
    samples = scrape(port)
    return {key: samples[key] for key in (*EXPECTED, _SERVER_ERRORS) if key in samples}


@pytest.mark.parametrize("processes", [1, 2])
def test_metrics_count_jobs_by_algorithm_and_outcome(
    server: RunningServer, tmp_path: Path, processes: int
) -> None:
    """Jobs by algorithm and outcome, job seconds, spool, server errors: 1 process or several."""
    admin: API = admin_api(server.url)
    jobs = submit_jobs(admin, JOBS)
    port = free_port()
    flags = ("--processes", str(processes), "--metrics-port", str(port))
    with start_worker(tmp_path, server.url, *flags, burst=False) as worker:
        outcomes = [wait_final(admin, job_id, STARTUP)["status"] for job_id in jobs]
        assert outcomes == ["done", "done", "failed", "done"]
        expected = {**EXPECTED, _SERVER_ERRORS: 0.0}
        try:  # the last report may reach the endpoint a moment after the server has the result
            wait_for(lambda: counted(port) == expected, "the metrics to count the jobs")
        except AssertionError:
            assert counted(port) == expected
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
