"""Every built-in on real data gives plain scikit-learn's labels and scores, repeatably."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from algorithm_data import real_dataset, real_points
from sklearn import (
    cluster,
    discriminant_analysis,
    ensemble,
    linear_model,
    metrics,
    mixture,
    naive_bayes,
    neighbors,
    neural_network,
    svm,
    tree,
)
from sklearn.base import is_clusterer
from threadpoolctl import threadpool_info, threadpool_limits

from algorithms.builtin import BUILTINS
from algorithms.dataset import SETS, Dataset
from algorithms.registry import Algorithm, Registry
from algorithms.run import JobResult, run_algorithm

SEED = 1234

# (algorithm, dataset, params, the scikit-learn class a student would use by hand)
CASES: list[tuple[str, str, dict[str, Any], Any]] = [
    ("knn", "iris", {}, neighbors.KNeighborsClassifier),
    ("knn", "digits", {"n_neighbors": 3}, neighbors.KNeighborsClassifier),
    ("knn", "iris_names", {"weights": "distance"}, neighbors.KNeighborsClassifier),
    ("svm", "moons", {"C": 2.0}, svm.SVC),
    ("linear_svm", "iris", {}, svm.LinearSVC),
    ("logistic_regression", "breast_cancer", {"max_iter": 50}, linear_model.LogisticRegression),
    ("decision_tree", "wine", {"max_depth": 3}, tree.DecisionTreeClassifier),
    ("random_forest", "iris", {"n_estimators": 20}, ensemble.RandomForestClassifier),
    ("extra_trees", "wine", {"n_estimators": 20}, ensemble.ExtraTreesClassifier),
    ("gradient_boosting", "breast_cancer", {"max_iter": 20},
     ensemble.HistGradientBoostingClassifier),
    ("naive_bayes", "digits", {}, naive_bayes.GaussianNB),
    ("lda", "wine", {}, discriminant_analysis.LinearDiscriminantAnalysis),
    ("mlp", "moons", {"hidden_layer_sizes": [8, 8], "max_iter": 50},
     neural_network.MLPClassifier),
    ("linear_regression", "diabetes", {}, linear_model.LinearRegression),
    ("ridge", "diabetes", {"alpha": 0.5}, linear_model.Ridge),
    ("lasso", "diabetes", {"alpha": 0.1}, linear_model.Lasso),
    ("knn_regression", "diabetes", {"n_neighbors": 7}, neighbors.KNeighborsRegressor),
    ("svr", "diabetes", {"C": 100.0}, svm.SVR),
    ("decision_tree_regression", "diabetes", {"max_depth": 4}, tree.DecisionTreeRegressor),
    ("random_forest_regression", "diabetes", {"n_estimators": 20},
     ensemble.RandomForestRegressor),
    ("gradient_boosting_regression", "diabetes", {"max_iter": 20},
     ensemble.HistGradientBoostingRegressor),
    ("kmeans", "blobs", {"n_clusters": 3}, cluster.KMeans),
    ("kmeans", "iris", {"n_clusters": 3}, cluster.KMeans),
    ("kmeans", "blobs_unlabelled", {"n_clusters": 3}, cluster.KMeans),
    ("minibatch_kmeans", "blobs", {"n_clusters": 3}, cluster.MiniBatchKMeans),
    ("dbscan", "moons", {"eps": 0.3}, cluster.DBSCAN),
    ("hdbscan", "moons", {"min_cluster_size": 10}, cluster.HDBSCAN),
    ("optics", "blobs", {"min_samples": 10}, cluster.OPTICS),
    ("agglomerative", "blobs", {"n_clusters": 3}, cluster.AgglomerativeClustering),
    ("gaussian_mixture", "blobs", {"n_components": 3}, mixture.GaussianMixture),
    ("spectral", "circles", {"n_clusters": 2, "affinity": "nearest_neighbors"},
     cluster.SpectralClustering),
    ("mean_shift", "blobs_unlabelled", {}, cluster.MeanShift),
    ("birch", "blobs", {}, cluster.Birch),
]  # fmt: skip


def _plain_sklearn(
    estimator_class: Any, params: dict[str, Any], dataset: Dataset
) -> dict[str, Any]:
    """What a student gets by hand: same estimator and seed, fit on training, predict."""
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    if estimator_class is cluster.HDBSCAN:
        params["copy"] = True
    estimator = estimator_class(**params)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=SEED)
    with threadpool_limits(limits=1):
        if not hasattr(estimator, "predict"):
            stacked = estimator.fit_predict(np.vstack([dataset.split(s).X for s in SETS]))
            ends = np.cumsum([len(dataset.split(s).ids) for s in SETS])[:-1]
            return dict(zip(SETS, np.split(stacked, ends), strict=True))
        if is_clusterer(estimator):
            estimator.fit(dataset.training.X)
        else:
            estimator.fit(dataset.training.X, dataset.training.y)
        return {s: estimator.predict(dataset.split(s).X) for s in SETS}


def _plain_score(task: str, dataset: Dataset, set_name: str, predicted: np.ndarray) -> float:
    """The issue's score definitions, computed with scikit-learn's metrics directly."""
    split = dataset.split(set_name)
    if task == "classification":
        return float(metrics.accuracy_score(split.y, predicted))
    if task == "regression":
        return max(0.0, float(metrics.r2_score(split.y, predicted)))
    if split.y is not None:
        return max(0.0, float(metrics.adjusted_rand_score(split.y, predicted)))
    return (float(metrics.silhouette_score(split.X, predicted)) + 1.0) / 2.0


def _run(name: str, dataset_name: str, params: dict[str, Any]) -> JobResult:
    return run_algorithm(name, params, real_dataset(dataset_name), seed=SEED, pictures=False)


def test_every_builtin_is_covered() -> None:
    """The cases below run every built-in at least once."""
    assert {a.name for a in BUILTINS} == {case[0] for case in CASES}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("name", "dataset_name", "params", "estimator_class"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_builtin_matches_plain_sklearn(
    name: str, dataset_name: str, params: dict[str, Any], estimator_class: Any
) -> None:
    """A built-in's labels and scores equal plain scikit-learn's, and a rerun repeats them."""
    dataset = real_dataset(dataset_name)
    result = _run(name, dataset_name, params)
    expected = _plain_sklearn(estimator_class, params, dataset)
    task = next(a.task for a in BUILTINS if a.name == name)
    for set_name in SETS:
        assert result.labels[set_name] == expected[set_name].tolist()
        assert len(result.labels[set_name]) == len(dataset.split(set_name).ids)
    assert result.score_test == pytest.approx(_plain_score(task, dataset, "test", expected["test"]))
    assert result.score_validation == pytest.approx(
        _plain_score(task, dataset, "validation", expected["validation"])
    )
    for extras in (result.extra_scores_test, result.extra_scores_validation):
        assert {"fit_seconds", "predict_seconds"} <= extras.keys()
    json.dumps(result.labels, allow_nan=False)  # every label is JSON-native
    assert _run(name, dataset_name, params).labels == result.labels


def test_labels_keep_the_datasets_types() -> None:
    """String classes come back as str, int classes as int, regression values as float."""
    names = _run("knn", "iris_names", {}).labels["test"]
    assert {type(v) for v in names} == {str}
    assert set(names) <= {"setosa", "versicolor", "virginica"}
    assert {type(v) for v in _run("knn", "iris", {}).labels["validation"]} == {int}
    assert {type(v) for v in _run("ridge", "diabetes", {}).labels["training"]} == {float}


def test_training_accuracy_and_r2_are_extra_scores() -> None:
    """Supervised jobs report how well they fit their own training set."""
    dataset = real_dataset("iris")
    result = _run("decision_tree", "iris", {})
    expected = metrics.accuracy_score(dataset.training.y, result.labels["training"])
    assert result.extra_scores_test["training_accuracy"] == pytest.approx(expected)
    assert "training_r2" in _run("ridge", "diabetes", {}).extra_scores_validation


def test_params_random_state_wins_over_the_seed() -> None:
    """A job's own random_state is used as given; the seed fills in only when it is absent."""
    dataset = real_dataset("iris")
    result = _run("random_forest", "iris", {"n_estimators": 10, "random_state": 5})
    with threadpool_limits(limits=1):
        forest = ensemble.RandomForestClassifier(n_estimators=10, random_state=5)
        forest.fit(dataset.training.X, dataset.training.y)
    assert result.labels["test"] == forest.predict(dataset.test.X).tolist()


def test_convergence_warnings_become_short_sentences() -> None:
    """A ConvergenceWarning during fit is reported as one line, not raised or lost."""
    result = _run("mlp", "moons", {"max_iter": 5})
    assert any(w.startswith("ConvergenceWarning: ") for w in result.warnings)
    assert all("\n" not in w and len(w) <= 260 for w in result.warnings)


class _ThreadRecordingClassifier(neighbors.KNeighborsClassifier):
    """A classifier that records the BLAS/OpenMP thread counts of each fit and predict."""

    seen: list[int] = []

    def fit(self, X: Any, y: Any) -> Any:
        type(self).seen += [int(pool["num_threads"]) for pool in threadpool_info()]
        return super().fit(X, y)

    def predict(self, X: Any) -> Any:
        type(self).seen += [int(pool["num_threads"]) for pool in threadpool_info()]
        return super().predict(X)


@pytest.mark.parametrize(("dataset", "pictures"), [("iris", False), ("moons", True)])
def test_job_runs_with_one_blas_thread(dataset: str, pictures: bool) -> None:
    """BLAS/OpenMP thread pools are pinned to one thread while fitting and drawing regions."""
    _ThreadRecordingClassifier.seen = []
    recorder = Algorithm("recorder", "classification", "", _ThreadRecordingClassifier, ())
    registry = Registry([recorder])
    result = run_algorithm(
        "recorder", {}, real_dataset(dataset), seed=1, registry=registry, pictures=pictures
    )
    assert len(result.pictures) == (2 if pictures else 0)  # regions predicted a grid too
    assert _ThreadRecordingClassifier.seen
    assert set(_ThreadRecordingClassifier.seen) == {1}


def test_pictures_come_back_as_png() -> None:
    """With pictures on, a job returns PNG pictures drawn from its predictions."""
    result = run_algorithm("knn", {}, real_dataset("moons"), seed=SEED)
    assert result.pictures
    assert all(p.png.startswith(b"\x89PNG\r\n\x1a\n") for p in result.pictures)


def test_clustering_on_regression_data_is_scored_without_labels() -> None:
    """Continuous targets are not clusters: k-means on diabetes gets the silhouette score."""
    dataset = real_dataset("diabetes")
    result = run_algorithm("kmeans", {"n_clusters": 3}, dataset, seed=SEED, pictures=False)
    silhouette = metrics.silhouette_score(dataset.test.X, result.labels["test"])
    assert result.score_test == pytest.approx((silhouette + 1) / 2)


def test_points_become_arrays_ordered_by_id() -> None:
    """Features follow the info's order, points are sorted by id within their set."""
    dataset_info, points = real_points("iris")
    dataset = Dataset.from_points(dataset_info, points)
    by_id = {p["id"]: p for p in points}
    for set_name in SETS:
        split = dataset.split(set_name)
        assert list(split.ids) == sorted(p["id"] for p in points if p["set"] == set_name)
        assert split.X.dtype == np.float64
        first = by_id[split.ids[0]]
        assert split.X[0].tolist() == [first[f] for f in dataset_info["features"]]
        assert split.y is not None
        assert split.y[0] == first["label"]


def test_features_default_to_the_first_points_keys() -> None:
    """Without a features list, every key of the first point but id, set and target counts."""
    points = [
        {"id": 2, "b": 1.0, "label": "x", "a": 2, "set": "training"},
        {"id": 1, "a": 3.0, "b": 4.0, "label": "y", "set": "training"},
    ]
    dataset = Dataset.from_points({"name": "tiny", "task": "classification"}, points)
    assert dataset.features == ("b", "a")
    assert dataset.training.X.tolist() == [[4.0, 3.0], [1.0, 2.0]]
    assert dataset.training.y is not None
    assert dataset.training.y.tolist() == ["y", "x"]
    assert dataset.test.X.shape == (0, 2)
    assert dataset.test.y is None


def test_hidden_labels_give_no_label_array() -> None:
    """A set whose labels are all null (hidden or unlabelled) has y None; others keep theirs."""
    dataset_info, points = real_points("blobs")
    hidden = [{**p, "label": None} if p["set"] != "training" else p for p in points]
    dataset = Dataset.from_points(dataset_info, hidden)
    assert dataset.test.y is None
    assert dataset.validation.y is None
    assert dataset.training.y is not None
    assert dataset.training.y.dtype.kind == "i"
