"""The demo's datasets, built from scikit-learn's bundled sets and its generators.

Apart from ``server/demo.py`` because importing scikit-learn takes a second: a server whose
database already holds the demo starts without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from sklearn import datasets

from server.importer import Label, Row, import_rows, split_sets
from server.models import Dataset

SEED = 2024
BLOB_CENTERS = [(-6.0, -4.0), (0.0, 5.0), (6.0, -3.0)]  # apart, so clustering can succeed
SPLIT = (0.6, 0.2, 0.2)


class Table(NamedTuple):
    """A dataset as arrays: feature matrix, labels (or ``None`` each), column names."""

    X: np.ndarray
    y: list[Label]
    features: list[str]
    target: str = "label"


class DemoDataset(NamedTuple):
    """A demo dataset's name, task and description, and how to build its table."""

    name: str
    task: str
    description: str
    build: Callable[[], Table]


def _snake(name: str) -> str:
    """``'sepal length (cm)'`` -> ``'sepal_length_cm'``: names a student can type."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _bundled(loader: Callable[..., Any], *, class_names: bool = False) -> Callable[[], Table]:
    """A builder for one of scikit-learn's bundled sets; ``class_names`` gives text labels."""

    def build() -> Table:
        bunch = loader()
        if class_names:
            labels: list[Label] = [str(bunch.target_names[i]) for i in bunch.target]
        else:
            labels = [value.item() for value in bunch.target]
        return Table(bunch.data, labels, [_snake(str(name)) for name in bunch.feature_names])

    return build


def _plane(X: np.ndarray, y: np.ndarray | None) -> Table:
    labels: list[Label] = [None] * len(X) if y is None else [value.item() for value in y]
    return Table(X, labels, ["x", "y"])


def _noisy_sine() -> Table:
    rng = np.random.default_rng(SEED)
    x = rng.uniform(-3.0, 3.0, size=300)
    y = np.sin(x) + rng.normal(scale=0.15, size=x.size)
    return Table(x.reshape(-1, 1), [float(value) for value in y], ["x"], target="y")


DATASETS = (
    DemoDataset(
        "iris",
        "classification",
        "Fisher's iris flowers: 3 species (text labels), 4 sizes.",
        _bundled(datasets.load_iris, class_names=True),
    ),
    DemoDataset(
        "wine",
        "classification",
        "Wines from 3 cultivars (labels 0-2), 13 chemical measures.",
        _bundled(datasets.load_wine),
    ),
    DemoDataset(
        "breast_cancer",
        "classification",
        "Breast tumours, 0 malignant or 1 benign, 30 cell-nucleus measures.",
        _bundled(datasets.load_breast_cancer),
    ),
    DemoDataset(
        "moons",
        "classification",
        "Two interleaving half circles with noise, in 2-D.",
        lambda: _plane(*datasets.make_moons(500, noise=0.2, random_state=SEED)),
    ),
    DemoDataset(
        "circles",
        "classification",
        "A small circle inside a large one, with noise, in 2-D.",
        lambda: _plane(*datasets.make_circles(400, noise=0.1, factor=0.5, random_state=SEED)),
    ),
    DemoDataset(
        "diabetes",
        "regression",
        "Disease progression after a year from 10 baseline values.",
        _bundled(datasets.load_diabetes),
    ),
    DemoDataset(
        "sine",
        "regression",
        "y = sin(x) plus noise: one feature, a curved target.",
        _noisy_sine,
    ),
    DemoDataset(
        "blobs",
        "clustering",
        "Three Gaussian blobs in 2-D; labels say which blob.",
        lambda: _plane(*datasets.make_blobs(450, centers=BLOB_CENTERS, random_state=SEED)),
    ),
    DemoDataset(
        "moons_unlabelled",
        "clustering",
        "Two half circles in 2-D, without labels.",
        lambda: _plane(datasets.make_moons(300, noise=0.05, random_state=SEED)[0], None),
    ),
)


def create_dataset(spec: DemoDataset) -> Dataset:
    """Import one demo dataset through the CSV importer's own path."""
    table = spec.build()
    sets = split_sets(len(table.y), SPLIT, SEED)
    rows = (
        Row(dict(zip(table.features, map(float, values), strict=True)), label, set_name)
        for values, label, set_name in zip(table.X, table.y, sets, strict=True)
    )
    return import_rows(
        spec.name,
        spec.task,
        table.features,
        rows,
        target=table.target,
        description=spec.description,
    )
