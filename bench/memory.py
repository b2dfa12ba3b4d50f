"""Private memory of one more worker process: the target is 30 MB or less.

Run with ``.venv/bin/python bench/memory.py`` (about two minutes).

In one run, against the real reference server on 127.0.0.1, it starts
``mlworker run --processes N`` for N = ``--fewer`` and N = ``--more``, one
after the other, feeds each jobs until every worker process has run
``--jobs`` of them (so its job processes are warm, as in production; which
worker claims a job is a race, so more jobs follow until the slowest
claimer has its share), waits until all are done and the tree is quiet,
and sums over every process of the tree (supervisor, workers, their job
forkservers and warm job processes, the resource trackers):

- **private** memory (``Private_Clean + Private_Dirty`` of
  ``/proc/<pid>/smaps_rollup``, what the kernel would free if that process
  alone ended: its unique set size), and
- **PSS** (each shared page divided among the processes sharing it).

One more worker process costs the growth of the tree's private memory
divided by the processes added. Copy-on-write pages the supervisor shares
with the workers it forked stay shared as long as no one writes them, so
that figure is what a machine pays for each ``--processes`` step.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    BenchServer,
    command_line,
    events,
    machine,
    process_tree,
    report_in_tmp,
    start_worker,
    stop,
    wait_for,
    write_dataset,
)

MB = 1e6
READY_DEADLINE = 180.0
JOB_DEADLINE = 300.0
WAVE = 5  # jobs per missing one in a wave: enough work for the other server process to wake
MAX_JOBS_PER_PROCESS = 40  # the jobs fed before giving up on a worker that never claims one


@dataclass(frozen=True)
class Memory:
    """One process's memory, in bytes."""

    pid: int
    role: str
    private: int
    pss: int


def memory_of(pid: int) -> Memory | None:
    """The process's private memory and PSS from ``smaps_rollup``, or None once gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    kilobytes = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        kilobytes[key] = int(rest.split()[0])
    private = (kilobytes.get("Private_Clean", 0) + kilobytes.get("Private_Dirty", 0)) * 1024
    return Memory(pid, role_of(pid), private, kilobytes.get("Pss", 0) * 1024)


def role_of(pid: int) -> str:
    """A short word for what a process of the tree is."""
    command = command_line(pid)
    for marker, role in (
        ("forkserver", "job forkserver / warm job process"),
        ("resource_tracker", "resource tracker"),
        ("mlworker run", "supervisor / worker"),
    ):
        if marker in command:
            return role
    return command


@dataclass(frozen=True)
class Tree:
    """The memory of one ``mlworker run --processes N`` tree, settled after its jobs."""

    processes: int
    members: tuple[Memory, ...]

    @property
    def private(self) -> int:
        return sum(member.private for member in self.members)

    @property
    def pss(self) -> int:
        return sum(member.pss for member in self.members)


def measure_tree(
    server: BenchServer, dataset: int, processes: int, args: argparse.Namespace, workdir: Path
) -> Tree:
    """Start a worker tree of ``processes``, run its jobs, let it settle; its memory."""
    admin = server.api()
    flags = ("--processes", str(processes), "--poll-min", "1", "--poll-max", "2")
    flags += ("--jobs-per-process", str(args.jobs_per_process))
    worker = start_worker(server.url, workdir, *flags)
    log = workdir / "worker.log"
    try:
        wait_for(
            lambda: len(events(log, "worker ready")) >= processes,
            "every worker ready",
            READY_DEADLINE,
        )
        run_on_every_worker(admin, dataset, processes, args, log)
        time.sleep(args.settle)  # results delivered, spares started, the tree at rest
        members = tuple(
            found for stat in process_tree(worker.pid) if (found := memory_of(stat.pid)) is not None
        )
    finally:
        code = stop(worker)
        admin.close()
    if code != 0:
        raise RuntimeError(f"the worker exited with {code}:\n{log.read_text()[-4000:]}")
    return Tree(processes, members)


def run_on_every_worker(
    admin: Any, dataset: int, processes: int, args: argparse.Namespace, log: Path
) -> None:
    """Submit jobs until each of the ``processes`` workers has finished ``args.jobs``.

    A worker that ran none would keep an unused job process (7 MB instead of
    16), and the two trees' sums would not compare. Jobs go out in waves that
    last longer than the server's cross-process check (0.5 s on SQLite): a
    submit wakes the long polls held in its own server process at once, and
    those in another only at that check, so small waves all go to one worker.
    """
    submitted = 0
    while True:
        done = Counter(event["worker_id"] for event in events(log, "job finished"))
        short = processes - sum(1 for count in done.values() if count >= args.jobs)
        if short == 0:
            return
        if submitted >= MAX_JOBS_PER_PROCESS * processes:
            raise RuntimeError(f"after {submitted} jobs, jobs finished per worker: {dict(done)}")
        jobs = [admin.submit_job(args.algorithm, dataset) for _ in range(short * args.jobs * WAVE)]
        submitted += len(jobs)
        _wait_done(admin, jobs, log, sum(done.values()) + len(jobs))


def _wait_done(admin: Any, jobs: list[int], log: Path, lines: int) -> None:
    """Wait until ``jobs`` are done and the log holds ``lines`` "job finished" lines."""
    wait_for(
        lambda: all(admin.get_job_result(job)["status"] == "done" for job in jobs),
        "every job done",
        JOB_DEADLINE,
    )
    wait_for(  # a job's line can follow its result by a few milliseconds
        lambda: len(events(log, "job finished")) >= lines, "every job's line", JOB_DEADLINE
    )


def measure(args: argparse.Namespace, root: Path) -> str:
    """Both trees against one server; the report."""
    with BenchServer(root / "server") as server:
        csv = write_dataset(root / "points.csv", args.points)
        dataset = server.import_dataset(csv, "memory", "classification")
        trees = [
            measure_tree(server, dataset, count, args, root / f"worker-{count}")
            for count in (args.fewer, args.more)
        ]
    return report(args, trees)


def report(args: argparse.Namespace, trees: Sequence[Tree]) -> str:
    """Each tree's memory by role, and the cost of one more worker process."""
    lines = [
        f"memory of mlworker run --processes N after at least {args.jobs} {args.algorithm} "
        f"job(s) per process on {args.points} points, settled {args.settle:g} s, "
        f"--jobs-per-process {args.jobs_per_process}",
        f"machine: {machine()}",
        "",
    ]
    for tree in trees:
        lines.append(
            f"--processes {tree.processes}: {len(tree.members)} processes, "
            f"private {tree.private / MB:.1f} MB, PSS {tree.pss / MB:.1f} MB"
        )
        roles = sorted({member.role for member in tree.members})
        for role in roles:
            group = [member for member in tree.members if member.role == role]
            private = ", ".join(f"{member.private / MB:.1f}" for member in group)
            lines.append(f"  {role:<36} {len(group):>2} x private MB: {private}")
    fewer, more = trees
    added = more.processes - fewer.processes
    per_private = (more.private - fewer.private) / added / MB
    per_pss = (more.pss - fewer.pss) / added / MB
    verdict = "meets" if per_private <= args.target else "misses"
    lines += [
        "",
        f"one more worker process: private {per_private:.1f} MB, PSS {per_pss:.1f} MB "
        f"(target {args.target:g} MB private: {verdict} it)",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fewer", type=int, default=2, help="processes of the first tree (2)")
    parser.add_argument("--more", type=int, default=3, help="processes of the second tree (3)")
    parser.add_argument("--jobs", type=int, default=3, help="jobs per worker process (3)")
    parser.add_argument("--points", type=int, default=1000, help="points of the dataset (1000)")
    parser.add_argument("--algorithm", default="knn", help="the jobs' algorithm (knn)")
    parser.add_argument(
        "--jobs-per-process", type=int, default=100, help="the workers' setting (100)"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the jobs (5)")
    parser.add_argument("--target", type=float, default=30.0, help="MB per process (30)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    args = _parser().parse_args(argv)
    if args.more <= args.fewer:
        raise SystemExit("--more must be larger than --fewer")
    return report_in_tmp(measure, args)


if __name__ == "__main__":
    raise SystemExit(main())
