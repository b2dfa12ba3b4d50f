"""What a job's pictures cost against the two pictures a user would draw with sklearn's displays.

Issue 14's target: both pictures of a job cost at most 0.3 of what the
naive script's two display pictures (``bench/baselines.py``: decision
boundary or PCA scatter, then confusion matrix or predicted against true,
with pyplot, saved as PNG) cost **on the same job**, measured in one run.

For each case the estimator is fitted once; then this process alternates,
``--rounds`` times, ``draw_pictures`` (PNG bytes in memory, as a job makes
them) and the naive pictures (PNG files in a temporary directory), after one
untimed call of each. Medians per case of the wall time and of this
process's CPU time (which a busy machine moves less), their ratios, and the
worst ratios. ``--cold`` also times the first ``draw_pictures`` in a
process forked just before, as a job process that has drawn nothing yet.
Run with ``.venv/bin/python bench/pictures.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import machine, ms

# Case name -> (algorithm, params, dataset as made by throughput.make_datasets).
CASES = {
    "2 features, classification": ("knn", {}, "moons"),
    "64 features, classification": ("logistic_regression", {"max_iter": 300}, "digits"),
    "2 features, regression": ("decision_tree_regression", {"max_depth": 5}, "plane"),
    "10 features, regression": ("ridge", {}, "diabetes"),
    "4 features, classification, 3 classes": ("svm", {}, "iris"),
    "2 features, clustering": ("kmeans", {"n_clusters": 3}, "blobs"),
}
TARGET = 0.3


def dataset_of(name: str, task: str, X: Any, y: Any) -> Any:
    """The dataset a job would get: the seeded 0.6/0.2/0.2 split of the import command."""
    import numpy as np

    from algorithms.dataset import Dataset

    sets = np.random.default_rng(0).choice(
        ["training", "test", "validation"], len(X), p=[0.6, 0.2, 0.2]
    )
    features = [f"x{i}" for i in range(X.shape[1])]
    points = [
        {"id": i + 1, "set": str(s), **dict(zip(features, map(float, row), strict=True))}
        | {"label": label.item()}
        for i, (row, label, s) in enumerate(zip(X, y, sets, strict=True))
    ]
    info = {"name": name, "task": task, "features": features, "target": "label"}
    return Dataset.from_points(info, points)


def timed(call: Any) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's) that ``call()`` takes."""
    started, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - started, time.process_time() - cpu


def cold_draw(estimator: Any, dataset: Any, predictions: Any) -> tuple[float, float]:
    """``timed`` of the first ``draw_pictures`` in a process forked now (a fresh job process)."""
    from algorithms.pictures import draw_pictures

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw once, write the seconds, leave at once
        os.close(read)
        wall, cpu = timed(functools.partial(draw_pictures, estimator, dataset, predictions))
        os.write(write, f"{wall} {cpu}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        wall, cpu = map(float, answer.read().split())
    os.waitpid(pid, 0)
    return wall, cpu


@dataclass
class Case:
    """The timings of one case: (wall, CPU) seconds of each call, ours and naive."""

    name: str
    ours: list[tuple[float, float]] = field(default_factory=list)
    naive: list[tuple[float, float]] = field(default_factory=list)
    cold: tuple[float, float] | None = None

    def median(self, side: str, which: int) -> float:
        """The median wall (``which`` 0) or CPU (1) seconds of ``side``."""
        return statistics.median(t[which] for t in getattr(self, side))

    def ratio(self, which: int) -> float:
        """Ours over naive, of the medians."""
        return self.median("ours", which) / self.median("naive", which)

    def row(self) -> str:
        """One line of the report."""
        cells = [f"  {self.name:<38}"]
        for which in (0, 1):
            ours, naive = self.median("ours", which), self.median("naive", which)
            cells.append(f"{ms(ours):>10}{ms(naive):>10}{self.ratio(which):>6.2f}")
        if self.cold is not None:
            cells.append(f"{ms(self.cold[0]):>10}{ms(self.cold[1]):>10}")
        return "".join(cells)


def measure(rounds: int, cold: bool, out: Path) -> list[Case]:
    """Every case of CASES, ``rounds`` timed calls each way, alternating."""
    from baselines import fit_predict, naive_pictures
    from throughput import make_datasets

    from algorithms.catalog import default_registry
    from algorithms.pictures import draw_pictures

    made = make_datasets()
    cases = []
    for name, (algorithm, params, data) in CASES.items():
        task = default_registry().get(algorithm).task
        dataset = dataset_of(data, task, *made[data][1:])
        estimator, predictions = fit_predict(algorithm, params, dataset)
        case = Case(name, cold=cold_draw(estimator, dataset, predictions) if cold else None)
        job = (estimator, dataset, predictions)
        for number in range(rounds + 1):
            drawn = timed(functools.partial(draw_pictures, *job))
            shown = timed(functools.partial(naive_pictures, task, *job, out))
            if number:  # the first of each is untimed: imports and caches
                case.ours.append(drawn)
                case.naive.append(shown)
        cases.append(case)
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    """Time every case and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed calls each way per case")
    parser.add_argument("--cold", action="store_true", help="also time a first draw after fork")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    load = Path("/proc/loadavg").read_text().strip()
    with tempfile.TemporaryDirectory(prefix="mlworker-bench-") as tmp:
        cases = measure(args.rounds, args.cold, Path(tmp))
    worst = {which: max(case.ratio(which) for case in cases) for which in (0, 1)}
    cold = f"{'cold wall':>10}{'cold CPU':>10}" if args.cold else ""
    lines = [
        f"picture cost: draw_pictures against the naive script's two display pictures, "
        f"{args.rounds} rounds, medians",
        f"machine: {machine()}",
        f"load average before the run: {load}",
        "",
        f"  {'':<38}{'wall: ours':>10}{'naive':>10}{'ratio':>6}"
        f"{'CPU: ours':>10}{'naive':>10}{'ratio':>6}{cold}",
        *(case.row() for case in cases),
        "",
        f"  worst ratio: wall {worst[0]:.2f}, CPU {worst[1]:.2f} "
        f"(target {TARGET} or less: {'met' if max(worst.values()) <= TARGET else 'missed'})",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
