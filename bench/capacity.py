"""The reference server with hundreds of long polls open: do other requests still get answers?

Run with ``.venv/bin/python bench/capacity.py`` (under a minute).

The real server (default settings: gunicorn with uvicorn workers, SQLite) is asked
``GET datasets/`` ``--requests`` times (100) one after the other: with no long poll open,
then twice with ``--polls`` (500) claims held open (``POST jobs/request/`` with
``wait=60``, each on its own connection, sent by one asyncio loop in this process); the
first of those rounds overlaps the 500 arriving, the second has them all waiting. It
reports the latencies of the rounds side by side, the server's threads and open database
files in each state (a long poll must cost neither), and how long one submitted job takes
to end one of the held polls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from common import (
    ADMIN,
    ADMIN_PASSWORD,
    BenchServer,
    machine,
    ms,
    percentile,
    report_in_tmp,
    wait_for,
    write_dataset,
)

from worker.api import API

HOLD = 60  # seconds each long poll asks for: longer than the measurement


def cookie_header(api: API) -> tuple[str, str]:
    """The ``Cookie`` header and CSRF token of a logged-in session."""
    cookies = {cookie.name: cookie.value for cookie in api._transport.session.cookies}
    return "; ".join(f"{k}={v}" for k, v in cookies.items() if v), cookies["csrftoken"] or ""


class HeldPolls:
    """``count`` long polls on their own connections, driven by an event loop in a thread."""

    def __init__(self, url: str, api: API, count: int) -> None:
        self.host, port = url.split("//")[1].rstrip("/").split(":")
        self.port = int(port)
        self.cookies, self.csrf = cookie_header(api)
        self.count = count
        self.sent = 0
        self.answers: list[tuple[float, bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.writers: list[asyncio.StreamWriter] = []

    def open(self) -> None:
        """Open every connection and send its claim; returns once all are sent."""
        self.thread.start()
        for number in range(self.count):
            asyncio.run_coroutine_threadsafe(self._poll(number), self.loop)
        wait_for(lambda: self.sent == self.count, "every long poll sent", 60)

    async def _poll(self, number: int) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.writers.append(writer)
        body = f"wait={HOLD}".encode()
        head = (
            f"POST /jobs/request/ HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Cookie: {self.cookies}\r\nX-CSRFToken: {self.csrf}\r\nX-Worker: held-{number}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        self.sent += 1
        status = await reader.readline()
        self.answers.append((time.monotonic(), status + await reader.read(4096)))

    def close(self) -> None:
        """Drop every connection (the server cancels the waits)."""
        for writer in self.writers:
            self.loop.call_soon_threadsafe(writer.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def timed_gets(url: str, count: int) -> list[float]:
    """Seconds of ``count`` consecutive ``GET datasets/`` on one kept-alive session."""
    api = API(ADMIN, ADMIN_PASSWORD, url, retry_for=0)
    session: requests.Session = api._transport.session
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        answer = session.get(url + "datasets/", timeout=30)
        seconds.append(time.perf_counter() - started)
        answer.raise_for_status()
    return seconds


def ratio(rounds: dict[str, list[float]], q: float) -> float:
    """The ``q``-th percentile of the last round over that of the first."""
    values = list(rounds.values())
    return percentile(values[-1], q) / percentile(values[0], q)


def server_footprint(server: BenchServer) -> tuple[int, int]:
    """Threads of all server processes, and their open files on the SQLite database."""
    threads = files = 0
    for pid in server.pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            threads += int(next(ln for ln in status.splitlines() if ln.startswith("Threads:"))[8:])
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                files += "db.sqlite3" in os.readlink(fd)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return threads, files


def measure(args: argparse.Namespace, root: Path) -> str:
    """The two rounds of requests and the footprints; the report."""
    with BenchServer(root / "server") as server:
        dataset = server.import_dataset(
            write_dataset(root / "p.csv", 200), "held", "classification"
        )
        admin = server.api()
        idle_footprint = server_footprint(server)
        alone = timed_gets(server.url, args.requests)
        held = HeldPolls(server.url, admin, args.polls)
        held.open()
        arriving = timed_gets(server.url, args.requests)  # while the 500 are being taken in
        crowded = timed_gets(server.url, args.requests)  # with all of them waiting
        held_footprint = server_footprint(server)
        answered_early = len(held.answers)
        submitted = time.monotonic()
        admin.submit_job("naive_bayes", dataset, {})
        wait_for(lambda: len(held.answers) > answered_early, "a held poll to get the job", 30)
        woken = held.answers[-1][0] - submitted
        held.close()
    rounds = {
        "no long poll open": alone,
        f"{args.polls} arriving at once": arriving,
        f"{args.polls} long polls held": crowded,
    }
    return report(args, rounds, idle_footprint, held_footprint, answered_early, woken)


def report(
    args: argparse.Namespace,
    rounds: dict[str, list[float]],
    idle: tuple[int, int],
    held: tuple[int, int],
    early: int,
    woken: float,
) -> str:
    """Latencies side by side, footprints, the wake-up."""

    def row(name: str, values: list[float]) -> str:
        return (
            f"  {name:<26}{ms(percentile(values, 50)):>10}{ms(percentile(values, 95)):>10}"
            f"{ms(max(values)):>10}"
        )

    return "\n".join(
        [
            f"GET datasets/ x {args.requests}, without and with {args.polls} long polls held",
            f"machine: {machine()}",
            "",
            f"  {'':<26}{'median':>10}{'p95':>10}{'max':>10}",
            *(row(name, values) for name, values in rounds.items()),
            f"  held / none open: median {ratio(rounds, 50):.2f}, p95 {ratio(rounds, 95):.2f}",
            "",
            f"  server threads: {idle[0]} idle, {held[0]} with the polls held; "
            f"open database files: {idle[1]} idle, {held[1]} held",
            f"  polls answered before any job: {early} (want 0)",
            f"  one submit to one held poll answered: {ms(woken)}",
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=500, help="long polls held (500)")
    parser.add_argument("--requests", type=int, default=100, help="GETs per round (100)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    return report_in_tmp(measure, _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
