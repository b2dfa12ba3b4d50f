"""The registry: built-in names and defaults, duplicate and unknown names, declarations."""

from __future__ import annotations

import json
import math

import pytest
from sklearn.neighbors import KNeighborsClassifier

from algorithms.builtin import BUILTINS
from algorithms.catalog import default_registry
from algorithms.errors import DuplicateAlgorithmError, UnknownAlgorithmError
from algorithms.forbidden import is_forbidden
from algorithms.registry import Algorithm, Registry

ISSUE_NAMES = {
    "classification": [
        "knn", "svm", "linear_svm", "logistic_regression", "decision_tree", "random_forest",
        "extra_trees", "gradient_boosting", "naive_bayes", "lda", "mlp",
    ],
    "regression": [
        "linear_regression", "ridge", "lasso", "knn_regression", "svr",
        "decision_tree_regression", "random_forest_regression", "gradient_boosting_regression",
    ],
    "clustering": [
        "kmeans", "minibatch_kmeans", "dbscan", "hdbscan", "optics", "agglomerative",
        "gaussian_mixture", "spectral", "mean_shift", "birch",
    ],
}  # fmt: skip

# Parameters the built-ins leave out on purpose besides the forbidden ones (see builtin.py).
LEFT_OUT = {
    "metric_params", "kernel_params", "connectivity", "covariance_estimator", "precompute",
    "verbose_interval", "probability", "penalty", "copy",
}  # fmt: skip


def _knn(name: str = "knn", source: str = "builtin") -> Algorithm:
    return Algorithm(name, "classification", "k-NN", KNeighborsClassifier, ("n_neighbors",), source)


def test_builtins_have_the_issues_names_and_tasks() -> None:
    """The built-in names are exactly those students type, each under its task."""
    assert {task: [a.name for a in BUILTINS if a.task == task] for task in ISSUE_NAMES} == (
        ISSUE_NAMES
    )
    assert all(a.source == "builtin" and a.description for a in BUILTINS)


@pytest.mark.parametrize("algorithm", BUILTINS, ids=lambda a: a.name)
def test_builtin_params_are_explicit_with_sklearns_defaults(algorithm: Algorithm) -> None:
    """Each built-in allows a declared subset of its estimator's params, with sklearn's defaults."""
    given = algorithm.make().get_params(deep=False)
    assert algorithm.defaults() == {p: given[p] for p in algorithm.params}
    assert not [p for p in algorithm.params if is_forbidden(p)]
    assert {p for p in given if p not in algorithm.params and not is_forbidden(p)} <= LEFT_OUT
    assert ("random_state" in given) == ("random_state" in algorithm.params)


def test_duplicate_name_is_refused() -> None:
    """Registering a second algorithm under a taken name fails and keeps the first."""
    registry = Registry([_knn()])
    with pytest.raises(
        DuplicateAlgorithmError,
        match=r"^The algorithm name 'knn' \(plugin: other 2\.0\) is already taken by builtin; "
        r"choose another entry-point name\.$",
    ):
        registry.register(_knn(source="plugin: other 2.0"))
    assert registry.get("knn").source == "builtin"
    assert len(registry) == 1


def test_unknown_name_lists_the_available_ones() -> None:
    """get() of an unknown name raises an error listing every name, sorted."""
    registry = Registry([_knn("zeta"), _knn("alpha")])
    with pytest.raises(
        UnknownAlgorithmError,
        match=r"^There is no algorithm 'svm'\. The available algorithms are: alpha, zeta\.$",
    ):
        registry.get("svm")


def test_names_by_task_and_membership() -> None:
    """names() filters by task; the registry iterates in registration order."""
    registry = default_registry()
    assert registry.names("regression") == sorted(ISSUE_NAMES["regression"])
    assert [a.name for a in registry][: len(BUILTINS)] == [a.name for a in BUILTINS]
    assert "kmeans" in registry
    assert "k-means" not in registry


def test_default_registry_is_built_once() -> None:
    """default_registry() is cached: every job of a process shares one registry."""
    assert default_registry() is default_registry()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "K NN"}, ValueError, "algorithm name 'K NN' must be 1-64 characters"),
        ({"name": "x" * 65}, ValueError, "must be 1-64 characters"),
        ({"task": "ranking"}, ValueError, "algorithm 'knn' has task 'ranking', not one of"),
        ({"estimator": 3}, TypeError, "estimator must be a class or a factory"),
        ({"params": "n_neighbors"}, TypeError, "params must be a tuple of names"),
        ({"params": ("n_jobs", "n_neighbors")}, ValueError, "may not let jobs set ['n_jobs']"),
    ],
)
def test_bad_declarations_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """An Algorithm checks its own declaration (what a plugin author gets wrong)."""
    fields: dict[str, object] = {
        "name": "knn",
        "task": "classification",
        "description": "",
        "estimator": KNeighborsClassifier,
        "params": ("n_neighbors",),
    }
    with pytest.raises(error) as caught:
        Algorithm(**{**fields, **kwargs})  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_declared_param_the_estimator_lacks_fails_on_defaults() -> None:
    """A declared name the estimator does not have is found when the defaults are read."""
    algorithm = Algorithm("x", "classification", "", KNeighborsClassifier, ("k",))
    with pytest.raises(ValueError, match=r"declares params its estimator lacks: \['k'\]"):
        algorithm.defaults()


def test_describe_is_json_safe() -> None:
    """describe() gives JSON-safe defaults: tuples as lists, infinity as its repr."""
    registry = default_registry()
    optics = registry.get("optics").describe()
    assert optics["params"]["max_eps"] == "inf"
    assert math.isinf(registry.get("optics").defaults()["max_eps"])
    assert registry.get("mlp").describe()["params"]["hidden_layer_sizes"] == [100]
    json.dumps([a.describe() for a in registry], allow_nan=False)


@pytest.mark.parametrize(
    ("name", "forbidden"),
    [
        ("n_jobs", True), ("num_threads", True), ("nthread", True), ("verbose", True),
        ("log_file", True), ("cache_dir", True), ("checkpoint_path", True), ("memory", True),
        ("callbacks", True), ("copy_X", True), ("warm_start", True),
        ("n_neighbors", False), ("max_depth", False), ("direction", False), ("profile", False),
    ],
)  # fmt: skip
def test_forbidden_names_cover_plugin_spellings(name: str, forbidden: bool) -> None:
    """Threads, logs, files and caches are forbidden under their usual spellings, and only they."""
    assert is_forbidden(name) is forbidden
