"""Jobs per second of a course's job stream: the worker against what it could be.

Issue 14's benchmark that decides. One run, against the real reference
server on 127.0.0.1 (``.venv/bin/python bench/throughput.py``, a few minutes;
``--help`` for the knobs):

1. **The stream.** ``--jobs`` small jobs (default 120) of the kinds a course
   submits, mixed and in a fixed shuffled order: 14 algorithms over the three
   tasks on 9 datasets of 2 to 64 features (iris, wine, breast cancer,
   digits, moons, blobs, diabetes and two generated regressions), imported
   with ``mlworker-server import-dataset``.
2. **The compute limit.** The same jobs in 2 processes with plain
   scikit-learn: fit, predict the three sets, one score per hidden set
   (``bench/baselines.py``). No pictures, no checks, nothing sent.
3. **The naive script.** The same plus two pictures per job drawn with
   scikit-learn's displays and pyplot, saved as PNG files, in 2 processes.
4. **The worker.** ``mlworker run --burst --processes 2`` with a fresh
   cache and spool runs the submitted jobs; every result must come back
   ``done``.

Each side's throughput is its jobs over its wall time from start (processes
started cold, imports included) to the last job's end; the steady rate, from
the first job's end to the last one's, leaves out start-up; *first* is the
time from the start to the first job's end. The load average is printed
with the numbers: other work on the machine moves them.

**Rounds.** The run measures the three ways ``--rounds`` times (default 3),
in the order limit, worker, naive each round, and gives each round's ratios
and their medians. Why: this machine's speed drifts by a fifth within a
minute (other tenants), and the compute limit's wall is only about 3 s, most
of it its processes' start: one measurement of each side, taken 20 s apart,
gave ratios from 0.33 to 0.58 for the same code. The limit and the worker
run back to back, so each round's ratio compares them on the same machine;
the median of the rounds is the run's number, and every round is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from common import BenchServer, events, machine, one_blas_thread, start_worker, stop, timestamp

WORKER_DEADLINE = 600.0
FAST_POLLS = ("--poll-min", "0.05", "--poll-max", "0.2")
PROCESSES = 2

# Algorithm, params; each runs on every dataset of its task (clustering on TASK_DATASETS too).
ALGORITHMS = {
    "classification": [
        ("knn", {}),
        ("decision_tree", {"max_depth": 5}),
        ("logistic_regression", {"max_iter": 300}),
        ("svm", {}),
        ("naive_bayes", {}),
        ("random_forest", {"n_estimators": 20}),
        ("lda", {}),
    ],
    "regression": [
        ("linear_regression", {}),
        ("ridge", {"alpha": 1.0}),
        ("knn_regression", {}),
        ("decision_tree_regression", {"max_depth": 5}),
    ],
    "clustering": [
        ("kmeans", {"n_clusters": 3}),
        ("gaussian_mixture", {"n_components": 3}),
        ("dbscan", {"eps": 0.8}),
    ],
}
CLUSTERED = ("blobs", "iris")  # the datasets the clustering jobs run on


@dataclass(frozen=True)
class Job:
    """One job of the stream."""

    algorithm: str
    params: dict[str, Any]
    dataset: str


@dataclass(frozen=True)
class Side:
    """How one way of running the stream did: wall time and each job's end."""

    name: str
    started: float
    ends: list[float]  # time.time() of each job's end

    @property
    def rate(self) -> float:
        """Jobs per second, start-up included."""
        return len(self.ends) / (max(self.ends) - self.started)

    @property
    def first(self) -> float:
        """Seconds from the start to the first job's end: the start-up, and one job."""
        return min(self.ends) - self.started

    @property
    def steady(self) -> float:
        """Jobs per second from the first job's end to the last one's."""
        ends = sorted(self.ends)
        return (len(ends) - 1) / (ends[-1] - ends[0])


def make_datasets() -> dict[str, tuple[str, Any, Any]]:
    """Name -> (task, X, y) of the stream's datasets (small, 2 to 64 features)."""
    from sklearn import datasets

    made: dict[str, tuple[str, Any, Any]] = {
        "iris": ("classification", *datasets.load_iris(return_X_y=True)),
        "wine": ("classification", *datasets.load_wine(return_X_y=True)),
        "breast_cancer": ("classification", *datasets.load_breast_cancer(return_X_y=True)),
        "moons": ("classification", *datasets.make_moons(300, noise=0.3, random_state=0)),
        "blobs": ("clustering", *datasets.make_blobs(300, centers=3, random_state=0)),
        "diabetes": ("regression", *datasets.load_diabetes(return_X_y=True)),
        "plane": ("regression", *datasets.make_regression(300, 2, noise=10, random_state=0)),
        "wide": ("regression", *datasets.make_regression(300, 40, noise=5, random_state=0)),
    }
    X, y = datasets.load_digits(return_X_y=True)
    made["digits"] = ("classification", X[:500], y[:500])
    return made


def stream(tasks: dict[str, str], count: int) -> list[Job]:
    """``count`` jobs: every algorithm on every dataset of its task, cycled, shuffled."""
    kinds = []
    for name, task in tasks.items():
        for algorithm, params in ALGORITHMS[task]:
            kinds.append(Job(algorithm, params, name))
        if name in CLUSTERED and task != "clustering":
            kinds.extend(Job(a, p, name) for a, p in ALGORITHMS["clustering"][:2])
    jobs = [kinds[i % len(kinds)] for i in range(count)]
    random.Random(0).shuffle(jobs)
    return jobs


def write_csv(path: Path, X: Any, y: Any) -> Path:
    """Features x0, x1, ... and the label, one row per point."""
    header = ",".join([*(f"x{i}" for i in range(X.shape[1])), "label"])
    rows = [
        ",".join([*(repr(float(v)) for v in row), repr(label.item())])
        for row, label in zip(X, y, strict=True)
    ]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


# The pools' side: each process gets the datasets once, then runs jobs.
_DATASETS: dict[str, Any] = {}
_OUT: list[Path] = []


def _start(datasets: dict[str, Any], out: Path) -> None:
    warnings.simplefilter("ignore")  # the worker records warnings with the job; no one reads these
    _DATASETS.update(datasets)
    _OUT.append(out)


def _limit_job(job: Job) -> float:
    from baselines import compute_limit

    compute_limit(job.algorithm, job.params, _DATASETS[job.dataset])
    return time.time()


def _naive_job(job: Job, number: int) -> float:
    from baselines import naive_script

    out = _OUT[0] / f"{number}"
    out.mkdir()
    naive_script(job.algorithm, job.params, _DATASETS[job.dataset], out)
    return time.time()


def run_pool(
    name: str, task: Callable[..., float], jobs: list[Job], datasets: dict[str, Any], out: Path
) -> Side:
    """The jobs in a pool of PROCESSES fresh (spawned) processes, in stream order."""
    out.mkdir()
    started = time.time()
    context = get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, context, _start, (datasets, out)) as pool:
        if task is _naive_job:
            ends = list(pool.map(task, jobs, range(len(jobs))))
        else:
            ends = list(pool.map(task, jobs))
    return Side(name, started, ends)


def run_worker(
    server: BenchServer, admin: Any, ids: dict[str, int], jobs: list[Job], workdir: Path
) -> Side:
    """Submit the stream, run ``mlworker run --burst --processes 2``, check every result."""
    job_ids = [admin.submit_job(job.algorithm, ids[job.dataset], job.params) for job in jobs]
    started = time.time()
    process = start_worker(
        server.url, workdir, "--burst", "--processes", str(PROCESSES), *FAST_POLLS
    )
    try:
        code = process.wait(timeout=WORKER_DEADLINE)
    except Exception:
        stop(process)
        raise
    log = workdir / "worker.log"
    if code != 0:
        raise RuntimeError(f"mlworker run exited with {code}:\n{log.read_text()[-4000:]}")
    results = {job_id: admin.get_job_result(job_id) for job_id in job_ids}
    failed = {i: r.get("message") for i, r in results.items() if r["status"] != "done"}
    if failed:
        raise RuntimeError(f"jobs not done: {failed}")
    finished = events(log, "job finished")
    if len(finished) != len(jobs):
        raise RuntimeError(f"{len(finished)} 'job finished' lines for {len(jobs)} jobs")
    return Side("mlworker run --burst --processes 2", started, [timestamp(e) for e in finished])


def results(jobs: list[Job], datasets: dict[str, Any]) -> list[dict[str, Any]]:
    """Each job's labels and scores from ``run_algorithm`` in this process, with seed 0.

    For comparing two versions of the code: the server gives every job a
    random seed, so the worker's own results differ from run to run. The
    job's timings (``fit_seconds``, ``predict_seconds``) are left out.
    """
    from algorithms.run import run_algorithm

    found = []
    for job in jobs:
        result = run_algorithm(job.algorithm, job.params, datasets[job.dataset], seed=0)
        extras = [dict(result.extra_scores_test), dict(result.extra_scores_validation)]
        for scores in extras:
            for timing in ("fit_seconds", "predict_seconds"):
                scores.pop(timing, None)
        found.append(
            {
                "job": [job.algorithm, job.dataset],
                "labels": result.labels,
                "scores": [result.score_test, result.score_validation, *extras],
            }
        )
    return found


@dataclass(frozen=True)
class Round:
    """The three ways, measured back to back, and the load average before them."""

    limit: Side
    naive: Side
    worker: Side
    load: str

    @property
    def of_naive(self) -> float:
        """The worker's throughput over the naive script's."""
        return self.worker.rate / self.naive.rate

    @property
    def of_limit(self) -> float:
        """The worker's throughput over the compute limit's."""
        return self.worker.rate / self.limit.rate


def report(rounds: Sequence[Round], jobs: list[Job], datasets: dict[str, Any]) -> str:
    """The lines bench/README.md quotes: each round's table and ratios, then their medians."""
    kinds = sorted({job.algorithm for job in jobs})
    features = sorted({d.features.__len__() for d in datasets.values()})
    lines = [
        f"throughput: {len(jobs)} jobs, {len(kinds)} algorithms, {len(datasets)} datasets "
        f"({min(features)} to {max(features)} features), {PROCESSES} processes each way",
        f"machine: {machine()}",
    ]
    for number, measured in enumerate(rounds, 1):
        lines += [
            "",
            f"round {number} of {len(rounds)}, load average before it: {measured.load}",
            f"  {'':<44}{'jobs/s':>8}{'steady':>8}{'wall':>8}{'first':>8}",
        ]
        for side in (measured.limit, measured.naive, measured.worker):
            wall = max(side.ends) - side.started
            rates = f"{side.rate:>8.2f}{side.steady:>8.2f}"
            lines.append(f"  {side.name:<44}{rates}{wall:>7.1f}s{side.first:>7.1f}s")
        limit, worker = measured.limit, measured.worker
        lines += [
            f"  steady: limit / worker {limit.steady / worker.steady:.2f}, "
            f"naive / worker {measured.naive.steady / worker.steady:.2f}",
            f"  worker / naive: {measured.of_naive:.2f}, worker / limit: {measured.of_limit:.2f}",
        ]
    of_naive = [measured.of_naive for measured in rounds]
    of_limit = [measured.of_limit for measured in rounds]
    lines += [
        "",
        f"median of {len(rounds)} rounds: "
        f"worker / naive: {statistics.median(of_naive):.2f} (target 1.5 or more; "
        f"rounds {_listed(of_naive)}), "
        f"worker / limit: {statistics.median(of_limit):.2f} (target 0.4 or more; "
        f"rounds {_listed(of_limit)})",
    ]
    return "\n".join(lines)


def _listed(ratios: Sequence[float]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


def measure_round(
    server: BenchServer,
    admin: Any,
    ids: dict[str, int],
    jobs: list[Job],
    datasets: dict[str, Any],
    out: Path,
) -> Round:
    """The compute limit, the worker and the naive script, in that order, into ``out``."""
    load = Path("/proc/loadavg").read_text().strip()
    out.mkdir()
    limit = run_pool(
        "compute limit (scikit-learn, no pictures)", _limit_job, jobs, datasets, out / "limit"
    )
    worker = run_worker(server, admin, ids, jobs, out / "worker")
    naive = run_pool(
        "naive script (+ 2 display pictures)", _naive_job, jobs, datasets, out / "naive"
    )
    return Round(limit, naive, worker, load)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stream three ways and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=120, help="jobs in the stream (120)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measurements of the three ways, back to back (3)"
    )
    parser.add_argument(
        "--results", type=Path, metavar="FILE", help="also write labels and scores (seed 0) here"
    )
    args = parser.parse_args(argv)
    one_blas_thread()
    from algorithms.dataset import Dataset

    with tempfile.TemporaryDirectory(prefix="mlworker-bench-") as tmp:
        root = Path(tmp)
        made = make_datasets()
        with BenchServer(root / "server") as server:
            ids = {
                name: server.import_dataset(write_csv(root / f"{name}.csv", X, y), name, task)
                for name, (task, X, y) in made.items()
            }
            admin = server.api()
            infos = admin.get_datasets()
            datasets = {
                name: Dataset.from_points(infos[i], admin.get_points(i)) for name, i in ids.items()
            }
            jobs = stream({name: task for name, (task, _, _) in made.items()}, args.jobs)
            rounds = [
                measure_round(server, admin, ids, jobs, datasets, root / f"round-{number}")
                for number in range(1, args.rounds + 1)
            ]
    print(report(rounds, jobs, datasets))
    if args.results:
        found = results(jobs, datasets)
        args.results.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
