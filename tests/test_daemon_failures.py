"""Misbehaving plugin algorithms become failed jobs with the right message; the worker goes on.

Real plugins from ``tests/plugins`` (on the worker's ``PYTHONPATH``): one that
raises, one that calls ``os.abort()``, one that never returns (its job has a
3 s time limit), one that allocates past the worker's 1 GiB memory limit.
Good jobs queued after them must still be done in the same ``--burst`` run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import JobRow, admin_api, spooled, start_worker, submit_jobs, worker_server

pytestmark = pytest.mark.slow

BAD_JOBS: tuple[JobRow, ...] = (
    ("test_raises", "iris", {}),
    ("test_aborts", "iris", {}),
    ("test_sleeps", "iris", {}, 3),
    ("test_allocates", "iris", {}),
)
GOOD_JOBS: tuple[JobRow, ...] = (
    ("test_ok", "iris", {}),
    ("knn", "moons", {"n_neighbors": 3}),
)
EXPECTED_MESSAGES = (
    "ValueError: boom from plugin",
    "the algorithm crashed (signal SIGABRT)",
    "the job took longer than its time limit of 3 seconds and was stopped",
    "the algorithm exceeded the memory limit of 1024 MiB and was stopped",
)


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The module's server: demo data, the test worker account, no jobs yet."""
    return worker_server(start_server)


def test_misbehaving_algorithms_fail_and_the_worker_goes_on(
    server: RunningServer, tmp_path: Path
) -> None:
    """Raise, abort, hang and memory hog: four failed jobs with their messages, then the rest."""
    admin = admin_api(server.url)
    bad = submit_jobs(admin, BAD_JOBS)
    good = submit_jobs(admin, GOOD_JOBS)
    with start_worker(tmp_path, server.url, "--memory-limit", "1G") as worker:
        assert worker.wait() == 0, worker.tail()
    results = {job: admin.get_job_result(job) for job in bad + good}
    messages = tuple(results[job]["message"] for job in bad)
    assert [results[job]["status"] for job in bad] == ["failed"] * len(bad), messages
    assert messages == EXPECTED_MESSAGES
    assert all("Traceback" not in m and "\n" not in m for m in messages)
    assert [results[job]["status"] for job in good] == ["done"] * len(good)
    assert all(results[job]["score_test"] is not None for job in good)
    kinds = {e["job_id"]: e["outcome"] for e in worker.events("job finished")}
    assert [kinds[job] for job in bad] == ["exception", "crashed", "timeout", "memory"]
    assert spooled(tmp_path) == 0


BROKEN_DATASET = """
from server.models import Dataset, Point
d = Dataset.objects.create(name="broken", task="classification", features=["x", "y"])
sets = ["training"] * 4 + ["test"] * 2 + ["validation"] * 2
points = Point.objects.bulk_create(
    Point(dataset=d, set=s, values={"x": float(i), "y": None if i == 4 else 1.0}, label=i % 2)
    for i, s in enumerate(sets)
)
d.refresh_version()
print(d.pk, points[4].pk)
"""


def test_a_broken_dataset_fails_its_job_with_the_point_and_feature(
    server: RunningServer, tmp_path: Path
) -> None:
    """A point with a null feature (as another server may send) fails the job, naming both."""
    dataset_id, point_id = map(int, server.shell(BROKEN_DATASET).split())
    admin = admin_api(server.url)
    broken = admin.submit_job("knn", dataset_id, {"n_neighbors": 1})
    (good,) = submit_jobs(admin, [("knn", "moons", {"n_neighbors": 3})])
    with start_worker(tmp_path, server.url) as worker:
        assert worker.wait() == 0, worker.tail()
    failed = admin.get_job_result(broken)
    assert failed["status"] == "failed"
    assert failed["message"].startswith(f"Point {point_id} has a null value for feature 'y'")
    assert admin.get_job_result(good)["status"] == "done"
    assert spooled(tmp_path) == 0
