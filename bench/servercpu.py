"""The reference server's CPU per job: a worker's claim and finish, without the ML.

One client in this process logs in as the worker account and does what
``mlworker run`` does per job in steady state, against the real server
(``mlworker-server run``, SQLite) on 127.0.0.1: ``POST jobs/request/`` with
``details=true`` (the claim), then ``POST jobs/<id>/finish/`` with a result
and two PNG pictures. The server's CPU (all its processes, from
``/proc/<pid>/stat``) is read around ``--rounds`` rounds of ``--batch``
claims, then the same number of finishes, after ``--warm`` untimed jobs; a
cheap authenticated ``GET jobs/<id>/`` is timed the same way, as a floor.
The client's own CPU is not counted. Medians over the rounds, in ms per
request (``.venv/bin/python bench/servercpu.py``, under a minute).

``--compare DIR`` also starts a second server whose ``server`` package comes
from ``DIR`` (e.g. ``git archive main server | tar -x -C DIR``), and the two
take turns round by round, so that both see the same load on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common import BenchServer, machine, report_in_tmp, tree_cpu, write_dataset

from worker.api import API

PICTURE_BYTES = 30_000  # about what a job's matplotlib PNG weighs
KINDS = ("claim", "finish", "get")


def _picture() -> bytes:
    """Bytes that pass the server's PNG check (it reads only the signature)."""
    return b"\x89PNG\r\n\x1a\n" + os.urandom(PICTURE_BYTES - 8)


def _timed(cpu: Callable[[], float | None], calls: Callable[[], object]) -> float:
    before = cpu() or 0.0
    calls()
    return (cpu() or 0.0) - before


class Subject:
    """One server, its worker client, and its CPU seconds per request by kind."""

    def __init__(self, name: str, root: Path, jobs: int, env: dict[str, str]) -> None:
        self.name = name
        self.server = BenchServer(root / name, env=env)
        self.server.start()
        csv = write_dataset(root / f"{name}.csv", 150)
        dataset = self.server.import_dataset(csv, "blobs", "classification")
        self.api: API = self.server.api()
        for _ in range(jobs):
            self.api.submit_job("knn", dataset, {})
        self.cpu = tree_cpu(self.server.pids())
        self.sizes: dict[str, int] = {}
        self.per: dict[str, list[float]] = {kind: [] for kind in KINDS}

    def claim(self) -> int:
        claim = self.api.claim_job(details=True)
        if claim.job is None or claim.details is None:
            raise RuntimeError(f"no job, or no details with it: {claim}")
        self.sizes.update(claim.details["dataset_info"]["points"])
        return claim.job

    def finish(self, job: int) -> None:
        sizes = self.sizes
        answer = self.api.update_job_details(
            job,
            0.9,
            0.8,
            [0] * sizes["training"],
            [1] * sizes["test"],
            [0] * sizes["validation"],
            extra_scores_test={"f1": 0.5},
            message="ok",
            pictures=[("a.png", _picture()), ("b.png", _picture())],
        )
        if not answer.get("success") or answer.get("refused"):
            raise RuntimeError(f"the result was refused: {answer}")

    def round(self, batch: int, *, record: bool = True) -> None:
        """``batch`` claims, then a GET of each job, then their finishes."""
        jobs: list[int] = []
        spent = {
            "claim": _timed(self.cpu, lambda: jobs.extend(self.claim() for _ in range(batch))),
            "get": _timed(self.cpu, lambda: [self.api.get_job_details(job) for job in jobs]),
            "finish": _timed(self.cpu, lambda: [self.finish(job) for job in jobs]),
        }
        if record:
            for kind, seconds in spent.items():
                self.per[kind].append(seconds / batch)

    def report(self) -> list[str]:
        medians = {kind: statistics.median(values) * 1000 for kind, values in self.per.items()}
        rows = [
            f"  {kind:7} {medians[kind]:6.2f}   rounds: "
            + " ".join(f"{value * 1000:.1f}" for value in self.per[kind])
            for kind in KINDS
        ]
        job = medians["claim"] + medians["finish"]
        return [f"{self.name}:", *rows, f"  claim + finish: {job:.2f} ms per job"]


def measure(args: argparse.Namespace, root: Path) -> str:
    """Start the server(s), queue the jobs, and time claims, finishes and a cheap GET."""
    jobs = args.warm + args.rounds * args.batch
    subjects = [Subject("this", root, jobs, {})]
    try:
        if args.compare:
            env = {"PYTHONPATH": str(Path(args.compare).resolve())}
            subjects.append(Subject("compared", root, jobs, env))
        for subject in subjects:
            subject.round(args.warm, record=False)
        for _ in range(args.rounds):
            for subject in subjects:
                subject.round(args.batch)
    finally:
        for subject in subjects:
            subject.server.stop()
    head = f"server CPU per request, ms (median of {args.rounds} rounds of {args.batch}):"
    return "\n".join([head, *(line for s in subjects for line in s.report()), machine()])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--warm", type=int, default=30, help="untimed jobs first")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds")
    parser.add_argument("--batch", type=int, default=40, help="jobs per round")
    parser.add_argument("--compare", help="a directory with another version's server package")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return report_in_tmp(measure, _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
