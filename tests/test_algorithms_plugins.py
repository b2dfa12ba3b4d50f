"""Plugins installed as real distributions load and run; broken ones are reported and skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from algorithm_data import install_teacher_plugins, real_dataset, real_points
from sklearn.cluster import KMeans
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import NearestCentroid
from threadpoolctl import threadpool_limits

from algorithms.dataset import SETS, Dataset
from algorithms.plugins import algorithm_from_object

SEED = 7

# Runs in a fresh interpreter whose sys.path holds the plugin site, as after `pip install`.
SCRIPT = """
import json, sys

import structlog

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

from algorithms.dataset import Dataset
from algorithms.catalog import default_registry
from algorithms.run import run_algorithm

jobs, seed = json.load(open(sys.argv[1])), int(sys.argv[2])
registry = default_registry()
out = {
    "algorithms": {a.name: a.describe() for a in registry},
    "reports": [{"name": r.name, "source": r.source, "error": r.error} for r in registry.reports],
    "labels": {},
}
for name, params, info, points in jobs:
    dataset = Dataset.from_points(info, points)
    result = run_algorithm(name, params, dataset, seed=seed, pictures=False)
    out["labels"][name] = result.labels
print(json.dumps(out))
"""

JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("centroid", {}, "iris"),
    ("ridge_classifier", {"alpha": 0.5}, "wine"),
    ("plugin_kmeans", {"n_clusters": 3}, "blobs"),
]


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """The subprocess's registry and job labels (stdout JSON) and its log (stderr)."""
    root = tmp_path_factory.mktemp("plugins")
    site = root / "site-packages"
    install_teacher_plugins(site)
    jobs = [(name, params, *real_points(data)) for name, params, data in JOBS]
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root / "jobs.json"), str(SEED)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def _expected(estimator: Any, dataset: Dataset, supervised: bool) -> dict[str, list[Any]]:
    """The labels of ``estimator`` fitted by hand on the training set."""
    with threadpool_limits(limits=1):
        if supervised:
            estimator.fit(dataset.training.X, dataset.training.y)
        else:
            estimator.fit(dataset.training.X)
        return {s: estimator.predict(dataset.split(s).X).tolist() for s in SETS}


def test_estimator_class_plugins_load_with_their_task(
    plugin_run: tuple[dict[str, Any], str],
) -> None:
    """An estimator class becomes an algorithm: task from its tags, params from get_params."""
    algorithms = plugin_run[0]["algorithms"]
    centroid = algorithms["centroid"]
    assert centroid["task"] == "classification"
    assert centroid["source"] == "plugin: mlw-teacher-plugins 1.0"
    assert centroid["description"].startswith("Nearest centroid: each class")
    assert centroid["params"] == {
        "metric": "euclidean",
        "priors": "uniform",
        "shrink_threshold": None,
    }
    kmeans = algorithms["plugin_kmeans"]
    assert kmeans["task"] == "clustering"
    assert "verbose" not in kmeans["params"]
    assert "copy_x" not in kmeans["params"]
    assert kmeans["params"]["n_clusters"] == 8


def test_algorithm_object_plugin_is_named_by_its_entry_point(
    plugin_run: tuple[dict[str, Any], str],
) -> None:
    """An Algorithm object keeps its declaration but takes the entry point's name and source."""
    ridge = plugin_run[0]["algorithms"]["ridge_classifier"]
    assert ridge == {
        "name": "ridge_classifier",
        "task": "classification",
        "description": "Ridge classifier with a chosen alpha.",
        "params": {"alpha": 1.0, "fit_intercept": True},
        "source": "plugin: mlw-teacher-plugins 1.0",
    }
    assert "whatever" not in plugin_run[0]["algorithms"]


def test_plugins_run_like_plain_sklearn(plugin_run: tuple[dict[str, Any], str]) -> None:
    """Jobs on plugin algorithms give the labels of the same estimator fitted by hand."""
    labels = plugin_run[0]["labels"]
    assert labels["centroid"] == _expected(NearestCentroid(), real_dataset("iris"), True)
    assert labels["ridge_classifier"] == _expected(
        RidgeClassifier(alpha=0.5), real_dataset("wine"), True
    )
    assert labels["plugin_kmeans"] == _expected(
        KMeans(n_clusters=3, random_state=SEED), real_dataset("blobs"), False
    )


def test_broken_plugins_are_reported_and_skipped(plugin_run: tuple[dict[str, Any], str]) -> None:
    """Import errors, wrong objects and duplicate names are reported; everything else loads."""
    out, log = plugin_run
    reports = {r["name"]: r for r in out["reports"]}
    assert set(reports) == {"broken", "not_an_estimator", "knn"}
    assert reports["broken"]["error"] == "ModuleNotFoundError: No module named 'mlw_no_such_module'"
    assert reports["broken"]["source"] == "plugin: mlw-broken-plugin 1.0"
    assert reports["not_an_estimator"]["error"].startswith(
        "TypeError: the entry point's object is 42; it must be an mlworker Algorithm"
    )
    assert reports["knn"]["error"].startswith(
        "DuplicateAlgorithmError: The algorithm name 'knn' (plugin: mlw-teacher-plugins 1.0) "
        "is already taken by builtin"
    )
    assert out["algorithms"]["knn"]["source"] == "builtin"
    assert {"centroid", "plugin_kmeans", "ridge_classifier", "kmeans"} <= out["algorithms"].keys()
    assert log.count("plugin skipped") == 3
    assert "mlw_no_such_module" in log


def test_a_duck_typed_estimator_gets_its_task_from_estimator_type() -> None:
    """A class without scikit-learn's tags but with _estimator_type is still recognised."""

    class Clusterer:
        """Assigns every point to cluster 0."""

        _estimator_type = "clusterer"

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {"n_jobs": None, "size": 1}

        def fit_predict(self, X: Any) -> Any:
            return [0] * len(X)

    algorithm = algorithm_from_object("zeros", Clusterer, "plugin: test 1.0")
    assert (algorithm.task, algorithm.params) == ("clustering", ("size",))
    assert algorithm.description == "Assigns every point to cluster 0."


def test_an_estimator_of_no_task_is_refused() -> None:
    """A transformer is neither classifier, regressor nor clusterer, so it cannot be a plugin."""
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(TypeError, match="StandardScaler is neither a classifier, a regressor"):
        algorithm_from_object("scaler", StandardScaler, "plugin: test 1.0")
