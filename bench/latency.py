"""Submit-to-claim latency on an idle fleet: long polls against polling only, in one run.

Run with ``.venv/bin/python bench/latency.py`` (about six minutes with the defaults).

For each way of asking for jobs, the real reference server (one, shared) and a fresh
``mlworker run --processes 2`` with the default settings but one:

- **long poll**: ``--long-poll 30`` (the default): the server holds each claim open;
- **polling only**: ``--long-poll 0``: the back-off of 1 to 30 s (the default bounds).

The fleet idles for ``--idle`` seconds (60) with no job; the job requests made in that
window are counted through a counting proxy in this process, per worker process and per
20 s. Then ``--jobs`` small jobs (``naive_bayes`` on a 200-point dataset) are submitted
one at a time at random moments: each after a random pause of ``--gap`` seconds (3 to 20,
seeded, the same draws for both modes) once the previous one is done. The latency of a
job is the server's own ``claimed - created`` (read from its database at the end), so
neither the proxy nor this script's polling of results enters it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import (
    BenchServer,
    CountingProxy,
    events,
    machine,
    percentile,
    report_in_tmp,
    start_worker,
    stop,
    wait_for,
    write_dataset,
)

from worker.api import API

READY_DEADLINE = 120.0
JOB_DEADLINE = 120.0
PROCESSES = 2
MODES = {"long poll": ("--long-poll", "30"), "polling only": ("--long-poll", "0")}


@dataclass(frozen=True)
class Run:
    """What one mode measured."""

    mode: str
    idle_window: float
    idle_claims: int
    latencies: list[float]


def measure_mode(
    server: BenchServer, dataset: int, mode: str, args: argparse.Namespace, root: Path
) -> Run:
    """Idle a fresh fleet, count its job requests, then time jobs submitted at random moments."""
    api = server.api()
    draws = random.Random(args.seed)
    with CountingProxy(server.url) as proxy:
        flags = ("--processes", str(PROCESSES), *MODES[mode])
        worker = start_worker(proxy.url, root / mode.replace(" ", "-"), *flags)
        log = root / mode.replace(" ", "-") / "worker.log"
        try:
            wait_for(
                lambda: len(events(log, "worker ready")) >= PROCESSES,
                "both worker processes ready",
                READY_DEADLINE,
            )
            before = proxy.count("POST", r"/jobs/request/")
            started = time.monotonic()
            time.sleep(args.idle)  # the measurement: the fleet idles, on purpose
            window = time.monotonic() - started
            idle_claims = proxy.count("POST", r"/jobs/request/") - before
            jobs = []
            for _ in range(args.jobs):
                time.sleep(draws.uniform(*args.gap))  # a student submits at a random moment
                jobs.append(api.submit_job("naive_bayes", dataset, {}))
                wait_for(lambda: finished(api, jobs[-1]), f"job {jobs[-1]}", JOB_DEADLINE)
        finally:
            code = stop(worker)
    if code != 0:
        raise RuntimeError(f"the worker exited with {code}:\n{log.read_text()[-4000:]}")
    return Run(mode, window, idle_claims, claim_latencies(server, jobs))


def finished(api: API, job: int) -> bool:
    """Whether ``job`` has its result."""
    return api.get_job_result(job)["status"] in ("done", "failed")


def claim_latencies(server: BenchServer, jobs: Sequence[int]) -> list[float]:
    """``claimed - created`` of each job, in seconds, from the server's database."""
    code = (
        "from server.models import Job\n"
        f"for job in Job.objects.filter(pk__in={list(jobs)!r}).order_by('pk'):\n"
        "    assert job.attempt == 1, job.pk\n"
        "    print('latency', (job.claimed - job.created).total_seconds())\n"
    )
    output = server.cli("manage", "shell", "-c", code).stdout.splitlines()
    return [float(line.split()[1]) for line in output if line.startswith("latency ")]


def report(runs: Sequence[Run], args: argparse.Namespace) -> str:
    """One table, both modes of the same run side by side."""
    lines = [
        f"submit-to-claim latency, {PROCESSES} idle worker processes, "
        f"{args.idle:g} s idle, {args.jobs} jobs at random moments ({args.gap[0]:g}-"
        f"{args.gap[1]:g} s apart, seed {args.seed})",
        f"machine: {machine()}",
        "",
        f"  {'mode':<14}{'median':>9}{'p95':>9}{'max':>9}   idle job requests",
    ]
    for run in runs:
        per_worker = run.idle_claims / PROCESSES
        per_20s = per_worker * 20 / run.idle_window
        lines.append(
            f"  {run.mode:<14}{percentile(run.latencies, 50):>8.2f}s"
            f"{percentile(run.latencies, 95):>8.2f}s{max(run.latencies):>8.2f}s"
            f"   {per_worker:.1f} per process in {run.idle_window:.0f} s "
            f"= {per_20s:.2f} per 20 s"
        )
    return "\n".join(lines)


def measure(args: argparse.Namespace, root: Path) -> str:
    """Run the server once and each mode against it; the report."""
    with BenchServer(root / "server") as server:
        csv = write_dataset(root / "points.csv", 200)
        dataset = server.import_dataset(csv, "latency", "classification")
        runs = [measure_mode(server, dataset, mode, args, root) for mode in MODES]
    return report(runs, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle first (60)")
    parser.add_argument("--jobs", type=int, default=10, help="jobs per mode (10)")
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(3.0, 20.0), help="pause before a submit (3 20)"
    )
    parser.add_argument("--seed", type=int, default=13, help="of the pauses (13)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    return report_in_tmp(measure, _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
