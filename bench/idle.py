"""CPU of an idle ``mlworker run``: issue 4's target is "no measurable CPU".

Run with ``.venv/bin/python bench/idle.py`` (about a minute and a half).

It starts the real reference server with no job at all and one worker
against it (by default polling between 1 and 5 seconds, six times as often
as the default maximum of 30 s allows, to be conservative), waits for the
worker's ``worker ready`` line and a few seconds more, and then reads
``/proc/<pid>/stat`` (user + system CPU, all threads) of the worker and of
every process under it (the job forkserver, the spare job process waiting
for its job, multiprocessing's resource tracker) at the start and at the end
of an idle window of ``--idle`` seconds. The worker talks to the server
through a counting proxy (in this process, so its CPU is not the worker's)
that shows how often it polled meanwhile.

The kernel counts CPU in clock ticks (``SC_CLK_TCK``, usually 100 per
second), so one reading is exact to 10 ms; the report gives that resolution
beside the numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common import (
    TICK,
    BenchServer,
    CountingProxy,
    ProcStat,
    command_line,
    events,
    machine,
    process_tree,
    report_in_tmp,
    start_worker,
    stop,
    wait_for,
)

READY_DEADLINE = 120.0


def role(stat: ProcStat, tree: Sequence[ProcStat], root: int) -> str:
    """What a process of the worker's tree is, in words."""
    if stat.pid == root:
        return "worker (mlworker run)"
    parent = next((s for s in tree if s.pid == stat.ppid), None)
    if parent is not None and "forkserver" in command_line(parent.pid):
        return "spare job process"  # forked by the forkserver: it has the same command line
    command = command_line(stat.pid)
    if "forkserver" in command:
        return "job forkserver"
    if "resource_tracker" in command:
        return "resource tracker"
    return command


def measure(args: argparse.Namespace, root: Path) -> str:
    """Run the server and an idle worker; the report."""
    with BenchServer(root / "server") as server, CountingProxy(server.url) as proxy:
        polls = ("--poll-min", str(args.poll_min), "--poll-max", str(args.poll_max))
        worker = start_worker(proxy.url, root / "worker", *polls)
        log = root / "worker" / "worker.log"
        try:
            wait_for(lambda: events(log, "worker ready"), "worker ready", READY_DEADLINE)
            time.sleep(args.settle)  # the backoff climbs to its maximum; start-up work ends
            claims_before = proxy.count("POST", r"/jobs/request/")
            before = {(s.pid, s.start): s for s in process_tree(worker.pid)}
            started = time.monotonic()
            time.sleep(args.idle)  # the measurement: nothing happens, on purpose
            after = {(s.pid, s.start): s for s in process_tree(worker.pid)}
            window = time.monotonic() - started
            roles = {
                key: role(stat, list(after.values()), worker.pid) for key, stat in after.items()
            }
            claims = proxy.count("POST", r"/jobs/request/") - claims_before
            requests = len(proxy.exchanges)
        finally:
            code = stop(worker)
    if code != 0:
        raise RuntimeError(f"the worker exited with {code}:\n{log.read_text()[-4000:]}")
    return report(args, roles, before, after, window, claims, requests)


def report(
    args: argparse.Namespace,
    roles: dict[tuple[int, int], str],
    before: dict[tuple[int, int], ProcStat],
    after: dict[tuple[int, int], ProcStat],
    window: float,
    claims: int,
    requests: int,
) -> str:
    """The CPU each process used in the window, and in total."""
    lines = [
        f"idle worker: poll bounds {args.poll_min:g} to {args.poll_max:g} s, "
        f"{window:.1f} s idle window after start-up (+{args.settle:g} s settling)",
        f"machine: {machine()}; shared and noisy",
        f"CPU resolution: 1 tick = {1000 / TICK:.0f} ms per process reading",
        "",
        f"  {'process':<24}{'pid':>8}{'CPU in window':>16}",
    ]
    total = 0.0
    for key, stat in after.items():
        used = stat.cpu - before[key].cpu if key in before else stat.cpu
        note = "" if key in before else "  (started in the window)"
        total += used
        lines.append(f"  {roles[key]:<24}{stat.pid:>8}{used * 1000:>13.0f} ms{note}")
    gone = [s for key, s in before.items() if key not in after]
    for stat in gone:
        lines.append(f"  {stat.name:<24}{stat.pid:>8}   ended in the window: not counted")
    per_minute = total * 60 / window
    lines += [
        f"  {'total':<24}{'':>8}{total * 1000:>13.0f} ms",
        "",
        f"CPU per minute idle: {per_minute * 1000:.0f} ms, "
        f"{per_minute / 60 * 100:.3f} % of one core",
        f"requests meanwhile: {claims} job requests ({requests} requests in all since start-up)"
        + (f"; {total / claims * 1000:.1f} ms CPU per job request" if claims else ""),
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after ready (5)")
    parser.add_argument("--poll-min", type=float, default=1.0, help="worker's poll_min (1)")
    parser.add_argument("--poll-max", type=float, default=5.0, help="worker's poll_max (5)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    return report_in_tmp(measure, _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
