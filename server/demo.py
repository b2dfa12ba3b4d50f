"""Demo data for ``mlworker-server run --demo``: accounts, datasets, a round and pending jobs.

Everything is generated at seed time from scikit-learn's bundled datasets and its generators
with fixed seeds, so every demo database holds the same points, splits and jobs, and the
demo's results repeat. The datasets go through ``import_rows``, the CSV importer's own path.
Seeding is one transaction keyed on the ``demo`` group: it happens once per database, and a
second run changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from django.contrib.auth.models import User
from django.db import transaction
from sklearn import datasets

from server.importer import Label, Row, import_rows, split_sets
from server.models import Dataset, Group, Job, Round

SEED = 2024
BLOB_CENTERS = [(-6.0, -4.0), (0.0, 5.0), (6.0, -3.0)]  # apart, so clustering can succeed
SPLIT = (0.6, 0.2, 0.2)
WORKER_ACCOUNT = ("backend", "foobar")
STUDENT_ACCOUNT = ("student", "student")
DEMO_GROUP = "demo"
DEMO_ROUND = "Moons challenge"
ROUND_DATASET = "moons"


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


class DemoJob(NamedTuple):
    """A pending demo job: a built-in algorithm's name, its dataset and params."""

    algorithm: str
    dataset: str
    params: Mapping[str, Any]
    in_round: bool = False


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

JOBS = (
    DemoJob("knn", "iris", {"n_neighbors": 5}),
    DemoJob("svm", "moons", {"C": 1.0, "kernel": "rbf"}, in_round=True),
    DemoJob("random_forest", "wine", {"n_estimators": 50, "max_depth": 5}),
    DemoJob("logistic_regression", "breast_cancer", {"C": 1.0, "max_iter": 10000}),
    DemoJob("decision_tree", "circles", {"max_depth": 5}),
    DemoJob("gradient_boosting", "moons", {"max_iter": 100, "learning_rate": 0.1}),
    DemoJob("naive_bayes", "wine", {}),
    DemoJob("linear_regression", "diabetes", {}),
    DemoJob("ridge", "diabetes", {"alpha": 0.1}),
    DemoJob("random_forest_regression", "diabetes", {"n_estimators": 50, "max_depth": 6}),
    DemoJob("knn_regression", "sine", {"n_neighbors": 7}),
    DemoJob("kmeans", "blobs", {"n_clusters": 3, "n_init": 10}),
    DemoJob("dbscan", "moons_unlabelled", {"eps": 0.2, "min_samples": 5}),
    DemoJob("agglomerative", "blobs", {"n_clusters": 3, "linkage": "ward"}),
    DemoJob("gaussian_mixture", "blobs", {"n_components": 3}),
)


def seed_demo() -> None:
    """Fill a database with the demo, once: nothing happens if the demo group exists."""
    with transaction.atomic():
        if Group.objects.filter(name=DEMO_GROUP).exists():
            return
        _account(*WORKER_ACCOUNT, staff=True)
        student = _account(*STUDENT_ACCOUNT, staff=False)
        group = Group.objects.create(name=DEMO_GROUP, public=True)
        group.members.add(student)
        by_name = {spec.name: _create_dataset(spec) for spec in DATASETS}
        round_ = Round.objects.create(name=DEMO_ROUND, dataset=by_name[ROUND_DATASET], open=True)
        round_.participants.add(student)
        for number, job in enumerate(JOBS, start=1):
            Job.objects.create(
                owner=student,
                algorithm=job.algorithm,
                dataset=by_name[job.dataset],
                params=dict(job.params),
                round=round_ if job.in_round else None,
                seed=SEED + number,
            )


def _account(username: str, password: str, *, staff: bool) -> User:
    """Create the account unless one of that name exists (then it is left as it is).

    The worker account is also a superuser so that the demo's admin login can browse
    every result and picture in Django's admin.
    """
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing
    if staff:
        return User.objects.create_superuser(username, password=password)
    return User.objects.create_user(username, password=password)


def _create_dataset(spec: DemoDataset) -> Dataset:
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
