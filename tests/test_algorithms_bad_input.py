"""Bad data and bad params are refused before fitting, with a sentence a student can act on."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from algorithm_data import real_dataset, real_points
from sklearn.base import BaseEstimator, ClusterMixin

from algorithms.dataset import SETS, Dataset
from algorithms.errors import (
    AlgorithmError,
    DatasetError,
    InvalidParamsError,
    UnknownAlgorithmError,
)
from algorithms.registry import Algorithm, Registry
from algorithms.run import run_algorithm

INFO = {"name": "tiny", "task": "classification", "features": ["x", "y"]}


def _points(**changes: Any) -> list[dict[str, Any]]:
    """Six good points, two per set; ``changes`` replaces keys of point 3."""
    points = [
        {"id": i, "x": float(i), "y": float(-i), "label": i % 2, "set": s}
        for i, s in enumerate(["training"] * 2 + ["test"] * 2 + ["validation"] * 2, start=1)
    ]
    points[2].update(changes)
    return points


def _dataset(points: list[dict[str, Any]], **info: Any) -> Dataset:
    return Dataset.from_points({**INFO, **info}, points)


def _only(dataset_name: str, keep: dict[str, int]) -> Dataset:
    """The named real dataset with only the first ``keep[set]`` points of each set."""
    dataset_info, points = real_points(dataset_name)
    kept, counts = [], dict.fromkeys(keep, 0)
    for point in sorted(points, key=lambda p: p["id"]):
        if counts[point["set"]] < keep[point["set"]]:
            counts[point["set"]] += 1
            kept.append(point)
    return Dataset.from_points(dataset_info, kept)


def _without_labels(dataset_name: str, sets: tuple[str, ...]) -> Dataset:
    dataset_info, points = real_points(dataset_name)
    return Dataset.from_points(
        dataset_info, [{**p, "label": None} if p["set"] in sets else p for p in points]
    )


def _run(name: str, dataset: Dataset, params: Any = None) -> Any:
    return run_algorithm(name, params or {}, dataset, seed=0, pictures=False)


# --- the points ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Point 3 has a null value for feature 'x'; every feature value must be a number."),
        ("abc", "Point 3 has the non-numeric value 'abc' for feature 'x';"),
        ("1.5", "Point 3 has the non-numeric value '1.5' for feature 'x';"),
        (True, "Point 3 has the non-numeric value True for feature 'x';"),
        ([1.0], "Point 3 has the non-numeric value [1.0] for feature 'x';"),
        (float("nan"), "Point 3 has the non-finite value nan for feature 'x';"),
        (float("inf"), "Point 3 has the non-finite value inf for feature 'x';"),
    ],
)
def test_bad_feature_value_names_point_and_feature(value: Any, message: str) -> None:
    """A null, textual, boolean or non-finite feature is refused with the point id and feature."""
    with pytest.raises(DatasetError, match=re.escape(message)):
        _dataset(_points(x=value))


def test_missing_feature_names_point_and_feature() -> None:
    """A point without one of the features is refused with its id and the feature's name."""
    points = _points()
    del points[2]["y"]
    with pytest.raises(DatasetError, match=r"^Point 3 has no value for feature 'y'\.$"):
        _dataset(points)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"set": "train"}, "Point 3 is in set 'train'; the set must be one of training, test,"),
        ({"id": 1}, "Point id 1 appears twice; every point needs its own id."),
        ({"id": "3"}, "Point number 3 has id '3'; every point needs an integer 'id'."),
        ({"label": True}, "Point 3 has label True in 'label'; a label must be an int, a float,"),
        ({"label": "cat"}, "Labels in 'label' mix strings (point 3) and numbers (point 1);"),
        ({"label": None}, "Point 3 of the test set has no label in 'label' while other test"),
    ],
)
def test_bad_point_is_named(changes: dict[str, Any], message: str) -> None:
    """Bad ids, sets and labels are refused naming the point and what is allowed."""
    with pytest.raises(DatasetError, match=re.escape(message)):
        _dataset(_points(**changes))


def test_unknown_task_is_refused() -> None:
    """A dataset's task must be one of the three the worker knows."""
    with pytest.raises(DatasetError, match=r"task 'ranking'; the task must be one of classif"):
        _dataset(_points(), task="ranking")


def test_no_points_and_no_feature_list_is_refused() -> None:
    """With neither points nor a features list, the features cannot be known."""
    with pytest.raises(DatasetError, match=r"Dataset 'empty' has no points, so its features"):
        Dataset.from_points({"name": "empty", "task": "clustering"}, [])


# --- the data against the algorithm -------------------------------------------------------


@pytest.mark.parametrize("set_name", ["training", "test", "validation"])
def test_a_set_without_points_is_refused(set_name: str) -> None:
    """Every set needs a point: training to learn from, test and validation to score."""
    keep = {"training": 20, "test": 5, "validation": 5, set_name: 0}
    with pytest.raises(
        AlgorithmError,
        match=rf"^The {set_name} set of dataset 'iris' has no points; every set \(training, "
        r"test and validation\) needs at least one point\.$",
    ):
        _run("knn", _only("iris", keep))


def test_one_class_in_training_is_refused() -> None:
    """A classifier cannot learn from a training set with a single class."""
    dataset = Dataset.from_points(
        {"name": "one", "task": "classification"},
        [{"id": 1, "x": 1.0, "label": "a", "set": "training"},
         {"id": 2, "x": 2.0, "label": "a", "set": "training"},
         {"id": 3, "x": 3.0, "label": "b", "set": "test"},
         {"id": 4, "x": 4.0, "label": "a", "set": "validation"}],
    )  # fmt: skip
    with pytest.raises(
        AlgorithmError,
        match=r"^The training set of dataset 'one' has only one class \('a'\); classification "
        r"needs at least two classes among the training points\.$",
    ):
        _run("naive_bayes", dataset)


def test_more_clusters_than_points_is_refused() -> None:
    """n_clusters above the number of training points is refused with the limit."""
    dataset = _only("blobs", {"training": 5, "test": 5, "validation": 5})
    with pytest.raises(
        AlgorithmError,
        match=r"^n_clusters is 8, but kmeans is fitted on the training set, which has only 5 "
        r"points; choose n_clusters of at most 5\.$",
    ):
        _run("kmeans", dataset)


def test_more_clusters_than_all_points_for_fit_predict_clusterers() -> None:
    """Clusterers without predict are fitted on all sets, so the limit counts all points."""
    dataset = _only("blobs", {"training": 2, "test": 2, "validation": 2})
    with pytest.raises(AlgorithmError, match=r"fitted on all sets together, which has only 6"):
        _run("agglomerative", dataset, {"n_clusters": 7})
    assert len(_run("agglomerative", dataset, {"n_clusters": 6}).labels["training"]) == 2


def test_spectral_neighbours_count_only_for_the_neighbours_affinity() -> None:
    """Spectral clustering's n_neighbors (default 10) limits only its nearest-neighbours graph."""
    dataset = _only("blobs", {"training": 3, "test": 2, "validation": 2})
    params = {"n_clusters": 3, "affinity": "nearest_neighbors"}
    with pytest.raises(AlgorithmError, match=r"^n_neighbors is 10, but spectral is fitted on all"):
        _run("spectral", dataset, params)
    assert len(_run("spectral", dataset, {"n_clusters": 3}).labels["test"]) == 2


def test_more_components_and_neighbours_than_points_are_refused() -> None:
    """n_components and n_neighbors cannot exceed the training points either."""
    with pytest.raises(
        AlgorithmError,
        match=r"^n_neighbors is 5, but knn is fitted on the training set, which has only 2 points",
    ):
        _run("knn", _dataset(_points()))
    blobs = _only("blobs", {"training": 3, "test": 2, "validation": 2})
    with pytest.raises(AlgorithmError, match=r"^n_components is 4, but gaussian_mixture is"):
        _run("gaussian_mixture", blobs, {"n_components": 4})


def test_supervised_training_without_labels_is_refused() -> None:
    """Classification needs labelled training points."""
    with pytest.raises(
        AlgorithmError,
        match=r"^The training points of dataset 'iris' have no labels \('label'\), and "
        r"classification needs them to learn from;",
    ):
        _run("knn", _without_labels("iris", ("training",)))


def test_supervised_hidden_test_labels_are_refused() -> None:
    """Regression cannot be scored without test labels (hidden from non-staff accounts)."""
    with pytest.raises(
        AlgorithmError,
        match=r"^The test points of dataset 'diabetes' have no labels \('label'\), and "
        r"regression needs them to score the predictions; use a labelled dataset",
    ):
        _run("ridge", _without_labels("diabetes", ("test", "validation")))


def test_clustering_without_test_labels_runs() -> None:
    """Clustering needs no labels: hidden test labels mean the silhouette score instead."""
    result = _run("kmeans", _without_labels("blobs", ("test",)), {"n_clusters": 3})
    assert 0.5 < result.score_test <= 1.0


def test_regression_with_text_labels_is_refused() -> None:
    """Regression needs numeric labels."""
    dataset_info, points = real_points("iris_names")
    dataset = Dataset.from_points({**dataset_info, "task": "regression"}, points)
    with pytest.raises(
        AlgorithmError,
        match=r"^Dataset 'iris_names' has text labels such as '\w+', but ridge is a regression "
        r"algorithm and needs numeric labels\.$",
    ):
        _run("ridge", dataset)


def test_algorithm_for_another_task_is_refused() -> None:
    """A classifier on a regression dataset is refused, naming the suitable algorithms."""
    with pytest.raises(
        AlgorithmError,
        match=r"^knn is a classification algorithm, but dataset 'diabetes' is for regression; "
        r"choose one of: decision_tree_regression, gradient_boosting_regression, ",
    ):
        _run("knn", real_dataset("diabetes"))


class _ShortPredictions(BaseEstimator, ClusterMixin):
    """A plugin clusterer whose predict leaves out the last point."""

    def fit(self, X: Any) -> _ShortPredictions:
        return self

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X) - 1, dtype=int)


def test_a_prediction_per_point_is_required() -> None:
    """A plugin that predicts fewer labels than points fails the job, naming the set."""
    short = Algorithm("short", "clustering", "", _ShortPredictions, ())
    dataset = _without_labels("blobs", SETS)
    with pytest.raises(
        AlgorithmError,
        match=r"^The algorithm predicted \d+ labels for the \d+ points of the training set; "
        r"it must predict one label per point\.$",
    ):
        run_algorithm("short", {}, dataset, seed=0, registry=Registry([short]), pictures=False)


def test_unknown_algorithm_lists_the_available_ones() -> None:
    """An unknown name is refused with a close match and every available name."""
    with pytest.raises(UnknownAlgorithmError) as caught:
        _run("k-means", real_dataset("blobs"))
    message = str(caught.value)
    assert message.startswith("There is no algorithm 'k-means'. Did you mean 'kmeans'? ")
    assert "The available algorithms are: agglomerative, birch, dbscan," in message


# --- the params ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("knn", {"k": 3}, "knn has no parameter 'k'; the allowed parameters are: algorithm, "
         "leaf_size, metric, n_neighbors, p, weights."),
        ("knn", {"n_neigbors": 3}, "knn has no parameter 'n_neigbors' (did you mean "
         "'n_neighbors'?); the allowed parameters are: algorithm,"),
        ("random_forest", {"n_jobs": -1}, "'n_jobs' is not allowed for random_forest: a job may "
         "not choose threads, logging, caches, files or in-place changes; the allowed"),
        ("agglomerative", {"memory": "/tmp/cache"}, "'memory' is not allowed for agglomerative"),
        ("mlp", {"verbose": True}, "'verbose' is not allowed for mlp"),
        ("mlp", {"warm_start": True}, "'warm_start' is not allowed for mlp"),
        ("lasso", {"copy_X": False}, "'copy_X' is not allowed for lasso"),
        ("svm", {"cache_size": 100000}, "'cache_size' is not allowed for svm"),
        ("knn", {"n_neighbors": -1}, "Invalid params for knn: The 'n_neighbors' parameter of "
         "KNeighborsClassifier must be an int in the range [1, inf) or None. Got -1 instead."),
        ("svm", {"kernel": "cubic"}, "Invalid params for svm: The 'kernel' parameter of SVC must"
         " be a str among {"),
        ("knn", {"n_neighbors": True}, "Invalid value true for 'n_neighbors' of knn: "
         "'n_neighbors' is not a true/false parameter (its default is 5)."),
        ("svm", {"kernel": "precomputed"}, "Invalid value 'precomputed' for 'kernel' of svm: a "
         "job sends feature values, not precomputed distances or kernels; choose another value."),
        ("knn", {"metric": "precomputed"}, "Invalid value 'precomputed' for 'metric' of knn"),
        ("svm", {"C": float("inf")}, "Invalid value inf for 'C' of svm: numbers must be finite."),
        ("knn", {"weights": {"a": 1}}, "Invalid value for 'weights' of knn: a value must be null,"
         " true/false, a number, a string or a list of those, not dict."),
        ("knn", {"weights": print}, "Invalid value for 'weights' of knn: a value must be null, "
         "true/false, a number, a string or a list of those, not builtin_function_or_method."),
        ("mlp", {"hidden_layer_sizes": [10, {"x": 1}]}, "Invalid value for 'hidden_layer_sizes' "
         "of mlp: a value must be null,"),
    ],
)  # fmt: skip
def test_bad_params_are_refused_before_fitting(
    name: str, params: dict[str, Any], message: str
) -> None:
    """Unknown, forbidden and invalid params are refused naming the parameter and what's allowed."""
    dataset = real_dataset("blobs" if name == "agglomerative" else "iris")
    if name == "lasso":
        dataset = real_dataset("diabetes")
    with pytest.raises(InvalidParamsError, match="^" + re.escape(message)):
        _run(name, dataset, params)


def test_a_string_stays_a_string() -> None:
    """A value naming a Python object is never imported: sklearn sees and refuses the text."""
    with pytest.raises(
        InvalidParamsError,
        match=r"^Invalid params for knn: The 'metric' parameter of KNeighborsClassifier must be",
    ):
        _run("knn", real_dataset("iris"), {"metric": "os:system"})


@pytest.mark.parametrize("params", [[("n_neighbors", 3)], "n_neighbors=3", 3])
def test_params_must_be_an_object(params: Any) -> None:
    """Params that are not a JSON object are refused with the expected shape."""
    with pytest.raises(
        InvalidParamsError, match=r'^The params of knn must be a JSON object such as \{"name"'
    ):
        run_algorithm("knn", params, real_dataset("iris"), seed=0, pictures=False)


def test_param_names_must_be_strings() -> None:
    """A non-string key is refused."""
    with pytest.raises(InvalidParamsError, match=r"^Parameter names must be strings, not 3\.$"):
        _run("knn", real_dataset("iris"), {3: 1})
