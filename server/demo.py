"""Demo data for ``mlworker-server run --demo``: accounts, datasets, a round and pending jobs.

Everything is generated at seed time from scikit-learn's bundled datasets and its generators
with fixed seeds (``server/demo_datasets.py``), so every demo database holds the same points,
splits and jobs, and the demo's results repeat. Seeding is one transaction keyed on the
``demo`` group: it happens once per database, and a second run changes nothing (nor imports
scikit-learn).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from django.contrib.auth.models import User
from django.db import transaction

from server.models import Group, Job, Round

WORKER_ACCOUNT = ("backend", "foobar")
STUDENT_ACCOUNT = ("student", "student")
DEMO_GROUP = "demo"
DEMO_ROUND = "Moons challenge"
ROUND_DATASET = "moons"


class DemoJob(NamedTuple):
    """A pending demo job: a built-in algorithm's name, its dataset and params."""

    algorithm: str
    dataset: str
    params: Mapping[str, Any]
    in_round: bool = False


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
        from server.demo_datasets import DATASETS, SEED, create_dataset

        _account(*WORKER_ACCOUNT, staff=True)
        student = _account(*STUDENT_ACCOUNT, staff=False)
        group = Group.objects.create(name=DEMO_GROUP, public=True)
        group.members.add(student)
        by_name = {spec.name: create_dataset(spec) for spec in DATASETS}
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
