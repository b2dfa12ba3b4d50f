"""`mlworker run --burst` on a batch of built-in jobs of all three tasks, against the real server.

One worker run serves the whole module: it goes through a fault proxy that
injects nothing and only records what the server received, so the tests can
count updates and dataset downloads. Each job's scores are recomputed here
with plain scikit-learn from the points the server hands an admin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import RunningServer
from daemon_helpers import (
    JobRow,
    Worker,
    admin_api,
    spooled,
    start_worker,
    submit_jobs,
    worker_server,
)
from fault_proxy import FaultProxy
from sklearn.base import BaseEstimator
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import accuracy_score, adjusted_rand_score, r2_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from worker.api import API

pytestmark = pytest.mark.slow

SETS = ("training", "test", "validation")
BATCH: tuple[JobRow, ...] = (
    ("knn", "iris", {"n_neighbors": 5}),
    ("svm", "moons", {"C": 1.0, "kernel": "rbf"}),
    ("random_forest", "iris", {"n_estimators": 20, "max_depth": 4}),
    ("linear_regression", "diabetes", {}),
    ("ridge", "diabetes", {"alpha": 0.5}),
    ("kmeans", "blobs", {"n_clusters": 3, "n_init": 10}),
    ("dbscan", "blobs", {"eps": 1.0, "min_samples": 5}),
    ("agglomerative", "blobs", {"n_clusters": 3, "linkage": "ward"}),
)
ESTIMATORS: dict[str, Callable[..., BaseEstimator]] = {
    "knn": KNeighborsClassifier,
    "svm": SVC,
    "random_forest": RandomForestClassifier,
    "linear_regression": LinearRegression,
    "ridge": Ridge,
    "kmeans": KMeans,
    "dbscan": DBSCAN,
    "agglomerative": AgglomerativeClustering,
}
JOB_KEYS = ("worker_id", "job_id", "algorithm", "dataset", "attempt")
PHASES = ("seconds_fetch", "seconds_start", "seconds_run", "seconds_total")


@dataclass(frozen=True)
class BatchRun:
    """What the module's one worker run left behind."""

    exit_code: int
    job_ids: list[int]
    admin: API
    worker: Worker
    proxy: FaultProxy  # what the server received
    spooled: int


@pytest.fixture(scope="module")
def batch(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> BatchRun:
    """Submit the batch and run `mlworker run --burst` through a recording proxy."""
    server = worker_server(start_server)
    admin = admin_api(server.url)
    job_ids = submit_jobs(admin, BATCH)
    workdir = tmp_path_factory.mktemp("batch")
    with FaultProxy(server.url) as proxy, start_worker(workdir, proxy.url) as worker:
        code = worker.wait()
    return BatchRun(code, job_ids, admin, worker, proxy, spooled(workdir))


def test_burst_exits_zero_with_every_job_done(batch: BatchRun) -> None:
    """--burst exits 0 once every job of the batch is done and the spool is empty."""
    assert batch.exit_code == 0, batch.worker.tail()
    statuses = {job: batch.admin.get_job_result(job)["status"] for job in batch.job_ids}
    assert statuses == dict.fromkeys(batch.job_ids, "done"), batch.worker.tail()
    assert batch.spooled == 0


def test_each_job_gets_exactly_one_accepted_update(batch: BatchRun) -> None:
    """The server receives one result per job, accepts it, and the worker logs one delivery."""
    for job in batch.job_ids:
        updates = batch.proxy.results(job)
        assert [e.upstream_status for e in updates] == [200], f"job {job}: {updates}"
        delivered = batch.worker.events("result delivered", job_id=job)
        assert [e["duplicate"] for e in delivered] == [False]
    assert batch.worker.events("result dropped: the server will not take it") == []


def test_scores_equal_plain_scikit_learn(batch: BatchRun) -> None:
    """Each job's test and validation scores equal the same estimator fitted here."""
    for job in batch.job_ids:
        result = batch.admin.get_job_result(job)
        expected = reference_scores(batch.admin, job)
        assert (result["score_test"], result["score_validation"]) == pytest.approx(expected), (
            f"job {job} ({result['algorithm']})"
        )


def test_dataset_fetched_once_per_machine(batch: BatchRun) -> None:
    """Each dataset's points cross the network once, however many jobs use it."""
    jobs_per_dataset = Counter(batch.admin.get_job_details(job)["dataset"] for job in batch.job_ids)
    assert max(jobs_per_dataset.values()) >= 3  # the cache is really exercised
    for dataset, jobs in jobs_per_dataset.items():
        downloads = batch.proxy.received("GET", f"/datasets/{dataset}/points/")
        assert len(downloads) == 1, f"dataset {dataset} ({jobs} jobs) fetched {len(downloads)}x"


def test_job_log_lines_name_the_job_and_its_phases(batch: BatchRun) -> None:
    """Each job's end is logged with worker id, job id, algorithm, dataset, attempt and phases."""
    finished = batch.worker.events("job finished")
    assert sorted(e["job_id"] for e in finished) == sorted(batch.job_ids)
    for event in finished:
        assert all(event.get(key) is not None for key in JOB_KEYS), event
        assert event["outcome"] == "success", event
        assert all(isinstance(event[phase], float) for phase in PHASES), event


def reference_scores(admin: API, job_id: int) -> tuple[float, float]:
    """The job's (test, validation) scores computed with plain scikit-learn."""
    details = admin.get_job_details(job_id)
    info = admin.get_datasets()[details["dataset"]]
    X, y = arrays(info, admin.get_points(details["dataset"]))
    estimator = ESTIMATORS[details["algorithm"]](**details["params"])
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=details["seed"])
    predictions = predict(estimator, info["task"], X, y)
    score = SCORES[info["task"]]
    return score(y["test"], predictions["test"]), score(y["validation"], predictions["validation"])


def arrays(
    info: dict[str, Any], points: list[dict[str, Any]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Features and labels per set, points ordered by id, as the protocol defines them."""
    X, y = {}, {}
    for name in SETS:
        members = sorted((p for p in points if p["set"] == name), key=lambda p: p["id"])
        X[name] = np.array([[p[f] for f in info["features"]] for p in members], dtype=float)
        y[name] = np.array([p[info["target"]] for p in members])
    return X, y


def predict(
    estimator: Any, task: str, X: dict[str, np.ndarray], y: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Fit on training, predict each set; clusterers without predict fit_predict all sets."""
    if task == "clustering" and not hasattr(estimator, "predict"):
        labels = estimator.fit_predict(np.vstack([X[name] for name in SETS]))
        ends = np.cumsum([len(X[name]) for name in SETS])[:-1]
        return dict(zip(SETS, np.split(labels, ends), strict=True))
    if task == "clustering":
        estimator.fit(X["training"])
    else:
        estimator.fit(X["training"], y["training"])
    return {name: estimator.predict(X[name]) for name in SETS}


SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "classification": lambda truth, predicted: float(accuracy_score(truth, predicted)),
    "regression": lambda truth, predicted: max(0.0, float(r2_score(truth, predicted))),
    "clustering": lambda truth, predicted: max(0.0, float(adjusted_rand_score(truth, predicted))),
}
