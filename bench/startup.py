"""How long ``mlworker run --burst --processes 2`` takes to start, and where its CPU goes.

Run with ``.venv/bin/python bench/startup.py`` (about a minute; ``--rounds``).

It starts the real reference server with one small dataset, then, ``--rounds``
times: submits one ``knn`` job and runs the worker with a fresh spool and
cache until the burst ends. From the worker's JSON log it takes the time from
the launch to ``supervisor ready`` (the supervisor logged in and forked its
workers), to the last ``worker ready`` (both workers' job processes are up)
and to the job's ``job finished``. Every 20 ms it reads ``/proc/<pid>/stat``
of each process of the worker's tree and keeps the last CPU seen per
process, summed by role (supervisor, workers, job forkservers, job
processes, resource trackers); the server's CPU is read before and after.
A process's last few milliseconds before it exits can be missed, so the CPU
figures are a little low. Medians over the rounds; other work on the machine
moves the times much more than the CPU.

To compare two versions of the code, run it twice with the other version's
``worker/`` and ``algorithms/`` first on ``PYTHONPATH`` (the worker and its
job processes inherit it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common import (
    BenchServer,
    ProcStat,
    command_line,
    events,
    machine,
    proc_stat,
    process_tree,
    report_in_tmp,
    start_worker,
    timestamp,
    write_dataset,
)

RUN_DEADLINE = 300.0
FAST_POLLS = ("--poll-min", "0.05", "--poll-max", "0.2")
ROLES = ("supervisor", "workers", "job forkservers", "job processes", "resource trackers")
MARKS = ("supervisor ready", "worker ready", "job finished")
LAST = {"supervisor ready": "", "worker ready": "the last ", "job finished": ""}


def role(stat: ProcStat, parents: dict[int, int], root: int) -> str | None:
    """Which of `ROLES` a process of the worker's tree is; None for a zombie (no command line)."""
    if stat.pid == root:
        return "supervisor"
    command = command_line(stat.pid)
    if not command:
        return None
    if "resource_tracker" in command:  # the supervisor's, or each worker's
        return "resource trackers"
    if "forkserver" in command_line(parents.get(stat.pid, 0)):
        return "job processes"  # forked by the forkserver: it has the same command line
    if "forkserver" in command:  # the supervisor's, or a worker's own
        return "job forkservers"
    return "workers"


def one_round(server: BenchServer, dataset: int, workdir: Path) -> dict[str, float]:
    """One burst with one job: seconds to each of `MARKS`, CPU seconds per role and server."""
    server.api().submit_job("knn", dataset, {})
    server_pids = server.pids()
    server_before = sum(s.cpu for pid in server_pids if (s := proc_stat(pid)) is not None)
    started = time.time()
    process = start_worker(server.url, workdir, "--burst", "--processes", "2", *FAST_POLLS)
    cpu: dict[tuple[int, int], tuple[str, float]] = {}
    while process.poll() is None and time.time() - started < RUN_DEADLINE:
        tree = process_tree(process.pid)
        parents = {s.pid: s.ppid for s in tree}
        for stat in tree:
            key = (stat.pid, stat.start)
            kind = role(stat, parents, process.pid) or cpu.get(key, ("workers", 0.0))[0]
            cpu[key] = (kind, stat.cpu)
        time.sleep(0.02)
    if process.wait(timeout=RUN_DEADLINE) != 0:
        raise RuntimeError(f"mlworker run failed:\n{(workdir / 'worker.log').read_text()[-4000:]}")
    server_after = sum(s.cpu for pid in server_pids if (s := proc_stat(pid)) is not None)
    log = events(workdir / "worker.log")
    found = {mark: max(timestamp(e) for e in log if e["event"] == mark) - started for mark in MARKS}
    for name in ROLES:
        found[f"CPU {name}"] = sum(seconds for kind, seconds in cpu.values() if kind == name)
    found["CPU server"] = server_after - server_before
    shutil.rmtree(workdir)
    return found


def measure(args: argparse.Namespace, root: Path) -> str:
    """Run the rounds; the report's lines."""
    with BenchServer(root / "server") as server:
        dataset = server.import_dataset(
            write_dataset(root / "points.csv", 300), "blobs", "classification"
        )
        rounds = [one_round(server, dataset, root / f"run-{n}") for n in range(args.rounds)]
    lines = [
        f"start-up of mlworker run --burst --processes 2 with one job, {args.rounds} rounds, "
        "medians",
        f"machine: {machine()}",
        "",
    ]
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        label = key if key not in MARKS else f"launch to {LAST[key]}{key}"
        lines.append(
            f"  {label:<36}{statistics.median(values):7.2f} s"
            f"   ({min(values):.2f} to {max(values):.2f})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="bursts to run (7)")
    return report_in_tmp(measure, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
