"""A job process per job against warm job processes, through `JobRunner` directly.

Issue 14's third part: a fresh fork per job costs tens of milliseconds of CPU
that a small job does not. In one run, this takes the same small jobs through
a `JobRunner` with ``jobs_per_process=1`` (what the worker did before: one
process per job, the next one forked while a job runs) and with the default,
alternately in rounds so that the machine's load drifting affects both alike.
Per job it reports the median wall time of `JobRunner.run` (hand-over to
report) and the CPU of the job processes (the forkserver's reaped children and
the living spare), and the ratios. Run with ``.venv/bin/python
bench/jobprocess.py`` (a minute or two; ``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import machine, ms, one_blas_thread, proc_stat, write_dataset


def measure(jobs_per_process: int, jobs: int, job: object) -> tuple[list[float], float]:
    """Wall seconds of each `run`, and the job processes' CPU seconds per job."""
    from worker.execute import JobRunner, JobSpec

    assert isinstance(job, JobSpec)
    walls = []
    with JobRunner(jobs_per_process=jobs_per_process) as runner:
        server = runner.forkserver_pid
        assert server is not None
        before = _job_cpu(server)
        for _ in range(jobs):
            outcome = runner.run(job, time_limit=120, memory_limit=2 * 1024**3)
            assert outcome.ok, outcome.message
            walls.append(outcome.timings.total)
        cpu = _job_cpu(server) - before
    return walls, cpu / jobs


def _job_cpu(forkserver: int) -> float:
    """CPU of the forkserver's children: those reaped, plus those alive now."""
    server = proc_stat(forkserver)
    assert server is not None
    alive = 0.0
    for task in Path(f"/proc/{forkserver}/task").iterdir():
        for pid in (task / "children").read_text().split():
            child = proc_stat(int(pid))
            alive += child.cpu + child.children_cpu if child else 0.0
    return server.children_cpu + alive


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per round and side (20)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides (2)")
    parser.add_argument("--points", type=int, default=1000, help="points of the dataset (1000)")
    parser.add_argument("--algorithm", default="naive_bayes", help="a cheap classifier")
    parser.add_argument("--pictures", action="store_true", help="draw the pictures too")
    args = parser.parse_args(argv)
    one_blas_thread()
    from algorithms.dataset import Dataset
    from worker.execute import DEFAULT_JOBS_PER_PROCESS, JobSpec

    with tempfile.TemporaryDirectory(prefix="mlworker-bench-") as tmp:
        lines = write_dataset(Path(tmp, "points.csv"), args.points).read_text().splitlines()[1:]
    sets = itertools.cycle(("training", "training", "training", "test", "validation"))
    points = [
        {"id": i, "x": float(x), "y": float(y), "label": int(label), "set": next(sets)}
        for i, (x, y, label) in enumerate((line.split(",") for line in lines), 1)
    ]
    info = {"name": "blobs", "task": "classification", "features": ["x", "y"], "target": "label"}
    job = JobSpec(1, args.algorithm, {}, Dataset.from_points(info, points), 0, args.pictures)
    sides = {"one per job": 1, f"warm ({DEFAULT_JOBS_PER_PROCESS})": DEFAULT_JOBS_PER_PROCESS}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    for _round in range(args.rounds):
        for name, jobs_per_process in sides.items():
            wall, cpu = measure(jobs_per_process, args.jobs, job)
            walls[name] += wall
            cpus[name].append(cpu)
    print(f"{args.jobs} x {args.rounds} {args.algorithm} jobs per side, pictures {args.pictures}")
    print(machine())
    for name in sides:
        wall, cpu = statistics.median(walls[name]), statistics.mean(cpus[name])
        print(f"  {name:<12} run {ms(wall):>10} median   job-process CPU {ms(cpu):>10} per job")
    old, new = sides
    wall_ratio = statistics.median(walls[new]) / statistics.median(walls[old])
    cpu_ratio = statistics.mean(cpus[new]) / statistics.mean(cpus[old])
    print(f"  warm / one per job: wall {wall_ratio:.2f}, CPU {cpu_ratio:.2f}")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"  ({time.monotonic() - started:.0f} s)")
    sys.exit(code)
