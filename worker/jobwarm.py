"""Imported by the job forkserver, and nowhere else: runs three tiny jobs, once.

The first run of an algorithm in a fresh process costs about 15 ms more than
later runs (scikit-learn's parameter validation and metrics, threadpoolctl and
numpy fill their caches on first use). Job processes are forked from the
forkserver, so running one small job per task there, once, when the worker
starts, lets every job process start warm. A forkserver can only import its
preloaded modules, so the work happens at import: that is this module's job.

Only built-ins run here, from a private registry: plugins are imported in the
job processes, where a broken one cannot take the forkserver down. BLAS and
OpenMP have one thread (the forkserver's environment says so), so no thread
pool exists to be broken by the fork. Any failure is ignored: it only costs
the time the warm-up was meant to save, and the forkserver must come up.
"""

from __future__ import annotations

import contextlib

from algorithms.builtin import BUILTINS
from algorithms.dataset import Dataset
from algorithms.registry import Registry
from algorithms.run import run_algorithm

#: One built-in per task, run on `_POINTS`.
WARM_UP_JOBS = (
    ("knn", "classification"),
    ("linear_regression", "regression"),
    ("kmeans", "clustering"),
)

_SETS = ("training", "training", "test", "validation")
_POINTS = [
    {"id": i, "x": float(i % 5), "y": float(i % 7), "label": i % 2, "set": _SETS[i % 4]}
    for i in range(1, 41)
]


def warm_up() -> None:
    """Run each job of `WARM_UP_JOBS` once, without pictures; ignore every failure."""
    registry = Registry(BUILTINS)
    for algorithm, task in WARM_UP_JOBS:
        info = {"name": "warm-up", "task": task, "features": ["x", "y"], "target": "label"}
        with contextlib.suppress(Exception):
            dataset = Dataset.from_points(info, _POINTS)
            run_algorithm(algorithm, {}, dataset, seed=0, registry=registry, pictures=False)


warm_up()
