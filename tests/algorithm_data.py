"""Real datasets as protocol point dicts, and plugin distributions on disk, for the algorithm tests.

The data is scikit-learn's bundled sets (iris, wine, breast cancer, digits,
diabetes) and generated 2-D sets (moons, blobs, circles), split 60/20/20 at
random with a fixed seed and handed out in shuffled order, so the tests also
prove that points are ordered by id within each set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets

from algorithms.dataset import SETS, Dataset

Loader = Callable[[], tuple[np.ndarray, np.ndarray | None, str]]


def points_from_arrays(
    X: np.ndarray, y: np.ndarray | None, *, seed: int = 0
) -> list[dict[str, Any]]:
    """Point dicts (features f0, f1, ...; ``label``; ``set``) in shuffled order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    ends = (int(len(X) * 0.6), int(len(X) * 0.8))
    set_of = {
        int(i): SETS[int(np.searchsorted(ends, pos, side="right"))] for pos, i in enumerate(order)
    }
    points = []
    for index in rng.permutation(len(X)):
        point: dict[str, Any] = {"id": int(index) + 1}
        point.update({f"f{j}": float(v) for j, v in enumerate(X[index])})
        point["label"] = None if y is None else y[index].item()
        point["set"] = set_of[int(index)]
        points.append(point)
    return points


def info(name: str, task: str, n_features: int) -> dict[str, Any]:
    """The protocol's dataset info dict for a dataset of ``n_features`` features."""
    return {
        "name": name,
        "description": f"{name} for tests",
        "task": task,
        "features": [f"f{j}" for j in range(n_features)],
        "target": "label",
    }


def _iris() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.load_iris(return_X_y=True)
    return X, y, "classification"


def _iris_names() -> tuple[np.ndarray, np.ndarray | None, str]:
    bunch = datasets.load_iris()
    return bunch.data, bunch.target_names[bunch.target], "classification"


def _wine() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.load_wine(return_X_y=True)
    return X, y, "classification"


def _breast_cancer() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return X, y, "classification"


def _digits() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.load_digits(return_X_y=True)
    return X[:600], y[:600], "classification"


def _diabetes() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.load_diabetes(return_X_y=True)
    return X, y, "regression"


def _moons() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.make_moons(n_samples=200, noise=0.1, random_state=0)
    return X, y, "classification"


def _blobs() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.make_blobs(n_samples=150, centers=3, random_state=0)
    return X, y, "clustering"


def _blobs_unlabelled() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, _y, task = _blobs()
    return X, None, task


def _circles() -> tuple[np.ndarray, np.ndarray | None, str]:
    X, y = datasets.make_circles(n_samples=200, noise=0.05, factor=0.5, random_state=0)
    return X, y, "clustering"


LOADERS: dict[str, Loader] = {
    "iris": _iris,
    "iris_names": _iris_names,
    "wine": _wine,
    "breast_cancer": _breast_cancer,
    "digits": _digits,
    "diabetes": _diabetes,
    "moons": _moons,
    "blobs": _blobs,
    "blobs_unlabelled": _blobs_unlabelled,
    "circles": _circles,
}


@functools.cache
def real_points(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The info dict and point dicts of the named dataset (see ``LOADERS``)."""
    X, y, task = LOADERS[name]()
    return info(name, task, X.shape[1]), points_from_arrays(X, y)


def real_dataset(name: str) -> Dataset:
    """The named dataset, converted as a job would convert it."""
    dataset_info, points = real_points(name)
    return Dataset.from_points(dataset_info, points)


def write_distribution(
    site: Path, dist: str, packages: dict[str, str], entry_points: dict[str, str]
) -> None:
    """Install a distribution into ``site`` as pip would: packages plus a ``dist-info``.

    ``packages`` maps package names to the source of their ``__init__.py``;
    ``entry_points`` maps names to ``package:object`` in the group ``mlworker.algorithms``.
    """
    for package, source in packages.items():
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text(source)
    dist_info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("[mlworker.algorithms]\n" + "\n".join(lines) + "\n")


PLUGIN_SOURCE = '''\
"""Algorithms a teacher might publish: estimator classes and an Algorithm object."""

from sklearn.cluster import KMeans
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import NearestCentroid

from algorithms.registry import Algorithm


class CentroidClassifier(NearestCentroid):
    """Nearest centroid: each class is represented by the mean of its points."""


class PluginKMeans(KMeans):
    """k-means, shipped as a plugin."""


RIDGE = Algorithm(
    name="whatever",  # the entry point's name wins
    task="classification",
    description="Ridge classifier with a chosen alpha.",
    estimator=RidgeClassifier,
    params=("alpha", "fit_intercept"),
)

NOT_AN_ESTIMATOR = 42
'''

PLUGIN_ENTRY_POINTS = {
    "centroid": "mlw_teacher_plugins:CentroidClassifier",
    "plugin_kmeans": "mlw_teacher_plugins:PluginKMeans",
    "ridge_classifier": "mlw_teacher_plugins:RIDGE",
    "not_an_estimator": "mlw_teacher_plugins:NOT_AN_ESTIMATOR",
    "knn": "sklearn.neighbors:KNeighborsClassifier",
}


def install_teacher_plugins(site: Path) -> None:
    """Two distributions in ``site``: working and misdeclared plugins, and one that cannot import.

    Loads: centroid (classifier class), plugin_kmeans (clusterer class),
    ridge_classifier (Algorithm object). Skipped: not_an_estimator (wrong
    object), knn (duplicate of a built-in), broken (import error).
    """
    write_distribution(
        site, "mlw-teacher-plugins", {"mlw_teacher_plugins": PLUGIN_SOURCE}, PLUGIN_ENTRY_POINTS
    )
    write_distribution(
        site,
        "mlw-broken-plugin",
        {"mlw_broken_plugin": "import mlw_no_such_module\n"},
        {"broken": "mlw_broken_plugin:Thing"},
    )
