"""`mlworker demo`: the whole system on one machine in one command (what `make demo` runs).

It starts the reference server with its demo data (``mlworker-server run --demo``) on a
free loopback port, with its database in a temporary directory, as the tests and the
benchmarks do (``worker.reference_server``): the worker package never imports ``server``.
Then ``mlworker run --burst --processes N`` works through the demo's jobs while progress
lines follow them: results landed, from the server; jobs running, from the workers' log
(``worker.demo_progress``). A table of the results follows as soon as the last lands.
Everything stops and the temporary directory goes at the end, on Ctrl-C or SIGTERM too.
``--keep`` leaves the server running, so that a person can browse the results and
pictures in Django's admin.

The protocol has no job listing. The demo's database is new, so its jobs are the ids
from 1 up to the first one the server does not know.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from worker.api import API
from worker.defaults import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.demo_progress import Progress, WorkerEvents
from worker.errors import APIError, NotFoundError
from worker.http import normalize_url
from worker.logs import configure_logging
from worker.reference_server import (
    ReferenceServer,
    ServerProcessError,
    clean_environment,
    console_script,
)

ADMIN = (DEFAULT_USERNAME, DEFAULT_PASSWORD)  # the demo's worker account, a superuser
STUDENT = ("student", "student")  # the demo's student, who owns the demo's jobs
SERVER_START_SECONDS = 180.0  # migrating and seeding a new database on a slow machine
POLL_SECONDS = 0.5
STOP_SECONDS = 30.0
EX_INTERRUPTED = 130  # as a shell reports a Ctrl-C
MESSAGE_WIDTH = 60
SERVER_EXTRA_HINT = (
    "the demo needs the reference server, installed with the 'server' extra: "
    "pip install 'mlworker[server]' (from a clone: pip install -e '.[server]', or `make demo`)"
)


class DemoError(Exception):
    """The demo cannot go on; the sentence says why and what to do."""


@dataclass
class Demo:
    """The demo's temporary directory and the processes it started there."""

    directory: Path
    processes: int
    workers: subprocess.Popen[bytes] | None = None
    logs: list[IO[bytes]] = field(default_factory=list)
    server: ReferenceServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = ReferenceServer(
            self.directory / "server",
            demo=True,
            start_deadline=SERVER_START_SECONDS,
            stop_deadline=STOP_SECONDS,
        )

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url

    def start_server(self) -> None:
        """``mlworker-server run --demo`` in its own session, so Ctrl-C reaches only us."""
        try:
            self.server.start()
        except ServerProcessError:
            raise DemoError(f"the server did not start:\n{self.tail('server')}") from None

    def start_workers(self) -> None:
        """``mlworker run --burst`` with a configuration of its own (spool and cache here)."""
        config = self.directory / "worker.toml"
        config.write_text(
            f'host = "{self.url}"\nusername = "{ADMIN[0]}"\npassword = "{ADMIN[1]}"\n'
            f"processes = {self.processes}\n"
            'spool_dir = "spool"\ncache_dir = "cache"\nlog_format = "json"\n'
            "startup_jitter = 0\npoll_min = 0.2\npoll_max = 1\n"
        )
        command = [_script("mlworker"), "run", "--burst", "--config", str(config)]
        self.workers = self._start(command, "worker")

    def _start(self, command: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("ab")
        self.logs.append(log)
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=clean_environment(),
            start_new_session=True,
        )  # fmt: skip

    def tail(self, name: str, lines: int = 15) -> str:
        """The last lines of the server's or the workers' log."""
        path = self.server.log_path if name == "server" else self.directory / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, keep_server: bool) -> None:
        """Stop the workers (aborting their jobs) and, unless kept, the server and the files."""
        if self.workers is not None:
            _stop(self.workers, signal.SIGTERM, signal.SIGINT)  # both stages: abort
        if not keep_server:
            self.server.stop()
            for log in self.logs:
                log.close()
            shutil.rmtree(self.directory, ignore_errors=True)


def demo(args: argparse.Namespace) -> int:
    """`mlworker demo`: 0 once every demo job is done and succeeded."""
    configure_logging("console", level=logging.WARNING)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C, cleaning up
    run = Demo(Path(tempfile.mkdtemp(prefix="mlworker-demo-")), args.processes)
    keep = False
    try:
        _check_server_installed()
        print(f"Starting the reference server with demo data in {run.directory} ...", flush=True)
        run.start_server()
        api = API(*ADMIN, run.url, retry_for=10)
        jobs = _demo_jobs(api)
        print(f"Server at {run.url}: {len(jobs)} demo jobs, {run.processes} worker processes.")
        run.start_workers()
        results = _follow(api, jobs, run)
        _print_table(results, api.get_datasets())
        keep = args.keep
        failed = [job for job, result in results.items() if result["status"] != "done"]
        if failed:
            print(f"{len(failed)} demo jobs failed: see their messages above.", file=sys.stderr)
        _print_pictures(results, run, keep=keep)
        _wait_exit(run.workers, STOP_SECONDS)  # the burst ends once nothing is left
        return 1 if failed else 0
    except DemoError as exc:
        print(f"mlworker demo: {exc}", file=sys.stderr)
        return 1
    except APIError as exc:
        print(f"mlworker demo: the demo server failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        keep = False
        print("\nmlworker demo: interrupted; cleaning up.", file=sys.stderr)
        return EX_INTERRUPTED
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # the clean-up is bounded: let it end
            signal.signal(signum, signal.SIG_IGN)
        run.stop(keep_server=keep)


def _check_server_installed() -> None:
    for module in ("django", "gunicorn"):
        if importlib.util.find_spec(module) is None:
            raise DemoError(SERVER_EXTRA_HINT)
    _script("mlworker-server")


def _script(name: str) -> str:
    """A console script of this installation: next to this Python, else on PATH."""
    try:
        return console_script(name)
    except FileNotFoundError as exc:
        hint = SERVER_EXTRA_HINT if name == "mlworker-server" else "reinstall mlworker"
        raise DemoError(f"{exc}: {hint}") from None


def _demo_jobs(api: API) -> list[int]:
    """The ids of the demo's jobs: 1, 2, ... up to the first the server does not know."""
    jobs: list[int] = []
    while True:
        try:
            api.get_job_result(len(jobs) + 1)
        except NotFoundError:
            if not jobs:
                raise DemoError("the server has no demo jobs") from None
            return jobs
        jobs.append(len(jobs) + 1)


def _follow(api: API, jobs: list[int], run: Demo) -> dict[int, dict[str, Any]]:
    """Poll the jobs, drawing progress, until every one is done or failed; their results."""
    assert run.workers is not None
    bar = Progress(len(jobs), run.processes, sys.stdout)
    workers = WorkerEvents(run.directory / "worker.log")
    results: dict[int, dict[str, Any]] = {}
    landed: set[int] = set()
    while True:
        for job in set(jobs) - landed:
            results[job] = api.get_job_result(job)
            if results[job]["status"] in ("done", "failed"):
                landed.add(job)
        workers.update()
        bar.show(landed, workers)
        if len(landed) == len(jobs):
            bar.close()
            return results
        if run.workers.poll() is not None:
            bar.close()
            raise DemoError(
                f"the workers stopped (exit status {run.workers.returncode}) before every job "
                f"was done:\n{run.tail('worker')}"
            )
        time.sleep(POLL_SECONDS)


def _wait_exit(process: subprocess.Popen[bytes] | None, seconds: float) -> None:
    # Every result is on the server already; one still running past this is stopped later.
    with contextlib.suppress(subprocess.TimeoutExpired):
        if process is not None:
            process.wait(timeout=seconds)


def _stop(process: subprocess.Popen[bytes], *signals: signal.Signals) -> None:
    """Send ``signals`` in turn, wait; SIGKILL its process group if it does not exit."""
    if process.poll() is None:
        for signum in signals:
            process.send_signal(signum)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _print_table(results: dict[int, dict[str, Any]], datasets: dict[int, Any]) -> None:
    """Job, algorithm, dataset, test and validation score, seconds, success or the message."""
    header = ("job", "algorithm", "dataset", "test", "validation", "seconds", "result")
    rows = [header] + [_row(job, r, datasets) for job, r in sorted(results.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    print()
    for row in rows:
        cells = [
            cell.rjust(width) if i in (0, 3, 4, 5) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        print("  ".join([*cells, row[-1]]).rstrip())
    print()


def _row(job: int, result: dict[str, Any], datasets: dict[int, Any]) -> tuple[str, ...]:
    dataset = datasets.get(result["dataset"], {}).get("name", str(result["dataset"]))
    extras = result.get("extra_scores_test") or {}
    timed = [extras[key] for key in ("fit_seconds", "predict_seconds") if key in extras]
    if result["status"] == "done":
        outcome = "success"
    else:
        first_line = (result.get("message") or result["status"]).splitlines()[0]
        outcome = "failed: " + _clip(first_line)
    return (
        str(job),
        result["algorithm"],
        dataset,
        _number(result.get("score_test")),
        _number(result.get("score_validation")),
        f"{sum(timed):.3f}" if timed else "-",
        outcome,
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 1] + "…"


def _print_pictures(results: dict[int, dict[str, Any]], run: Demo, *, keep: bool) -> None:
    """Where the pictures are: URLs while the server runs, else the directory they were in."""
    pictures = [(job, path) for job, r in sorted(results.items()) for path in r["pictures"]]
    media = run.directory / "server" / "media"
    if not keep:
        print(
            f"{len(pictures)} pictures were drawn. The demo's server and files go now; "
            "to browse the results and pictures, run: mlworker demo --keep"
        )
        return
    print(f"{len(pictures)} pictures (log in first, as below):")
    for job, path in pictures:
        print(f"  job {job}: {normalize_url(run.url, path)}")
    assert run.server.process is not None
    pid = run.server.process.pid
    print(
        f"\nThe server keeps running at {run.url} (pid {pid}).\n"
        f"  Open {run.url} in a browser: log in as {STUDENT[0]} / {STUDENT[1]} (a student's "
        f"jobs, pictures, the round's leaderboard) or {ADMIN[0]} / {ADMIN[1]} (a teacher)\n"
        f"  Results and pictures in Django's admin: {run.url}admin/ "
        f"(login {ADMIN[0]} / {ADMIN[1]})\n"
        f"  Pictures on disk: {media}\n"
        f"  Stop it and remove its data: kill {pid}; rm -r {run.directory}"
    )


__all__ = ["Demo", "demo"]
