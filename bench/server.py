"""How many workers one reference server carries: simulated workers polling it.

Each simulated worker is a thread with its own HTTP connection that does what
``mlworker run``'s loop does between jobs, with the worker's own defaults
(``worker.config``): a random start within ``startup_jitter``, then ``POST
jobs/request/`` with its own ``X-Worker`` name, and when no job comes, a wait
drawn by the worker's ``Backoff`` between ``poll_min`` and ``poll_max``; after
a claim it asks again at once, as a worker does after a job (the job itself
takes no time here: the server's side of a claim is what is measured).

For each database (SQLite, PostgreSQL in a throw-away cluster) and each fleet
size (100, 500, 1,000 by default), one server is started and:

1. **Idle**: the fleet polls an empty queue for ``--idle`` seconds: the
   request rate that costs, and its latency (p50, p99).
2. **Backlog**: ``--backlog`` jobs are inserted at once; the fleet claims
   them: the claim rate the server sustains (claims per second from the first
   claim to the last) and the latency of ``jobs/request/`` meanwhile.

Everything is bounded (at most 2,000 workers, 600 s per phase) and on
127.0.0.1. All simulated workers share one login (a login costs the server a
password hash; real workers log in once per process and then only poll). The
simulated fleet runs on the same cores as the server, so the numbers are a
floor for a server with cores of its own.

    .venv/bin/python bench/server.py                      # sqlite,postgres x 100,500,1000
    .venv/bin/python bench/server.py --databases sqlite --workers 100 --idle 20
    .venv/bin/python bench/server.py --json out.json      # the numbers, for a trend
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # postgres_helpers

from common import BenchServer, machine, percentile, process_tree, write_dataset
from postgres_helpers import PostgresCluster, find_bin_dir

from worker.backoff import Backoff
from worker.config import Settings, load_settings
from worker.http import post_headers

MAX_WORKERS = 2000
MAX_SECONDS = 600.0
CONNECT_TIMEOUT = 3.05  # the worker's


@dataclass
class Calls:
    """What the simulated fleet saw: one (start, seconds, status, claimed) per request."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: list[tuple[float, float, int, bool]] = field(default_factory=list)

    def add(self, started: float, seconds: float, status: int, claimed: bool) -> None:
        """Record one request (status 0: no answer)."""
        with self.lock:
            self.rows.append((started, seconds, status, claimed))

    def between(self, start: float, end: float) -> list[tuple[float, float, int, bool]]:
        """The requests that started in ``[start, end)``."""
        with self.lock:
            return [row for row in self.rows if start <= row[0] < end]


@dataclass(frozen=True)
class Level:
    """The numbers of one fleet size on one database."""

    database: str
    workers: int
    idle_requests_per_second: float
    idle_p50_ms: float
    idle_p99_ms: float
    claims: int
    claims_per_second: float
    claim_p50_ms: float
    claim_p99_ms: float
    errors: int  # 5xx answers, and requests that got no answer
    cpu_ms_per_idle_poll: float  # the server's CPU (and the database's) per idle poll
    cpu_ms_per_claim: float  # the same per request of the backlog phase


class Fleet:
    """``count`` simulated workers polling ``url`` with the worker's jitter and backoff."""

    def __init__(self, url: str, cookies: requests.cookies.RequestsCookieJar, count: int) -> None:
        self.url = url + "jobs/request/"
        self.cookies = cookies
        self.settings: Settings = load_settings({}, {"HOME": tempfile.gettempdir()})
        self.calls = Calls()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._worker, args=(n,), daemon=True) for n in range(count)
        ]

    def __enter__(self) -> Fleet:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(self.settings.request_timeout + 5)

    def _worker(self, number: int) -> None:
        settings = self.settings
        session = requests.Session()
        session.cookies.update(self.cookies)
        token = self.cookies.get("csrftoken") or ""
        headers = {**post_headers(self.url, token), "X-Worker": f"bench:{number}"}
        idle = Backoff(settings.poll_min, settings.poll_max)
        self.stopping.wait(random.uniform(0, settings.startup_jitter))
        while not self.stopping.is_set():
            started = time.monotonic()
            status, claimed = 0, False
            try:
                timeout = (CONNECT_TIMEOUT, settings.request_timeout)
                response = session.post(self.url, headers=headers, timeout=timeout)
                status = response.status_code
                claimed = status == 200 and response.json().get("job") is not None
            except (requests.RequestException, ValueError):
                pass
            self.calls.add(started, time.monotonic() - started, status, claimed)
            if claimed:
                idle.reset()
            else:
                self.stopping.wait(idle.next())
        session.close()


def measure(served: Served, database: str, workers: int, args: argparse.Namespace) -> Level:
    """One fleet size: an idle phase, then a backlog of jobs drained by the fleet."""
    server, dataset = served.server, served.dataset
    api = server.api()
    cookies = api._transport.session.cookies  # one login shared by the whole fleet
    with Fleet(server.url, cookies, workers) as fleet:
        warm = fleet.settings.startup_jitter + fleet.settings.poll_max  # every worker polls
        time.sleep(warm)
        idle_start, cpu_start = time.monotonic(), served.cpu()
        time.sleep(args.idle)
        idle = fleet.calls.between(idle_start, time.monotonic())
        idle_cpu = served.cpu() - cpu_start
        inserted, cpu_start = time.monotonic(), served.cpu()
        server.cli("manage", "shell", "--no-imports", "-c", _BACKLOG.format(args.backlog, dataset))
        deadline = inserted + args.claim_limit
        while time.monotonic() < deadline and _claimed(fleet.calls, inserted) < args.backlog:
            time.sleep(0.2)
        busy = fleet.calls.between(inserted, time.monotonic())
        busy_cpu = served.cpu() - cpu_start
    server.cli("manage", "shell", "--no-imports", "-c", _CLEAR)
    claims = sorted(start + seconds for start, seconds, _, claimed in busy if claimed)
    span = claims[-1] - claims[0] if len(claims) > 1 else float("nan")
    return Level(
        database=database,
        workers=workers,
        idle_requests_per_second=len(idle) / args.idle,
        idle_p50_ms=_ms_percentile(idle, 50),
        idle_p99_ms=_ms_percentile(idle, 99),
        claims=len(claims),
        claims_per_second=(len(claims) - 1) / span,
        claim_p50_ms=_ms_percentile(busy, 50),
        claim_p99_ms=_ms_percentile(busy, 99),
        errors=sum(1 for row in idle + busy if row[2] == 0 or row[2] >= 500),
        cpu_ms_per_idle_poll=1000 * idle_cpu / len(idle) if idle else float("nan"),
        cpu_ms_per_claim=1000 * busy_cpu / len(busy) if busy else float("nan"),
    )


def _ms_percentile(rows: list[tuple[float, float, int, bool]], q: float) -> float:
    """The latency percentile in ms; NaN when no request of the phase was answered in it."""
    return 1000 * percentile([row[1] for row in rows], q) if rows else float("nan")


def _claimed(calls: Calls, since: float) -> int:
    return sum(1 for row in calls.between(since, float("inf")) if row[3])


_BACKLOG = (
    "from django.contrib.auth import get_user_model; from server.models import Job; "
    "owner = get_user_model().objects.get(username='bench-worker'); "
    "Job.objects.bulk_create([Job(owner=owner, algorithm='naive_bayes', dataset_id={1}, "
    "time_limit=600) for _ in range({0})])"
)
_CLEAR = "from server.models import Job; Job.objects.all().delete()"


@dataclass(frozen=True)
class Served:
    """A running server, its dataset, and the processes whose CPU it costs."""

    server: BenchServer
    dataset: int
    database_pid: int | None  # PostgreSQL's postmaster: its backends do the queries

    def cpu(self) -> float:
        """User + system seconds of the server's processes and the database's, so far."""
        roots = [self.server.pids()[0], *([self.database_pid] if self.database_pid else [])]
        return sum(stat.cpu + stat.children_cpu for root in roots for stat in process_tree(root))


@contextmanager
def database_server(database: str, root: Path) -> Iterator[Served]:
    """A server and its one small dataset, on SQLite or on a throw-away PostgreSQL cluster."""
    env: dict[str, str] = {}
    cluster = None
    if database == "postgres":
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
        cluster = PostgresCluster(bin_dir)
        cluster.start()
        env["DATABASE_URL"] = cluster.create_database("bench")
    try:
        with BenchServer(root / database, env=env) as server:
            csv = write_dataset(root / f"{database}.csv", 100)
            dataset = server.import_dataset(csv, "bench", "classification")
            postmaster = None
            if cluster is not None:
                pid_file = cluster.data_dir / "postmaster.pid"
                postmaster = int(pid_file.read_text().split()[0])
            yield Served(server, dataset, postmaster)
    finally:
        if cluster is not None:
            cluster.stop()


def report(levels: Sequence[Level], args: argparse.Namespace) -> str:
    """The table, and where it was measured."""
    lines = [
        f"reference server capacity: simulated idle workers (poll {args.poll_bounds}), "
        f"{args.backlog} jobs of backlog per level",
        f"machine: {machine()}",
        f"server: mlworker-server run (gunicorn gthread, {args.server_config})",
        "",
        f"{'database':9} {'workers':>7} | {'idle req/s':>10} {'p50':>8} {'p99':>8} | "
        f"{'claims/s':>8} {'p50':>8} {'p99':>8} | {'errors':>6} | "
        f"{'CPU/poll':>8} {'CPU/claim':>9}",
    ]
    for level in levels:
        lines.append(
            f"{level.database:9} {level.workers:>7} | {level.idle_requests_per_second:>10.1f} "
            f"{level.idle_p50_ms:>6.1f}ms {level.idle_p99_ms:>6.1f}ms | "
            f"{level.claims_per_second:>8.1f} {level.claim_p50_ms:>6.1f}ms "
            f"{level.claim_p99_ms:>6.1f}ms | {level.errors:>6} | "
            f"{level.cpu_ms_per_idle_poll:>6.1f}ms {level.cpu_ms_per_claim:>7.1f}ms"
        )
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",")]
    if not all(0 < size <= MAX_WORKERS for size in sizes):
        raise argparse.ArgumentTypeError(f"fleet sizes run from 1 to {MAX_WORKERS}")
    return sizes


def _seconds(text: str) -> float:
    seconds = float(text)
    if not 0 < seconds <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"phases last from 0 to {MAX_SECONDS:g} seconds")
    return seconds


def main() -> int:
    """Run every database and fleet size; print the table (and write JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=_sizes, default=[100, 500, 1000])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--idle", type=_seconds, default=30.0, help="seconds of idle polling")
    parser.add_argument("--backlog", type=int, default=1000, help="jobs inserted at once")
    parser.add_argument("--claim-limit", type=_seconds, default=120.0, help="seconds to drain")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    defaults = load_settings({}, {"HOME": tempfile.gettempdir()})
    args.poll_bounds = (
        f"{defaults.poll_min:g}-{defaults.poll_max:g} s, jitter {defaults.startup_jitter:g} s"
    )
    args.server_config = "?"
    levels = []
    with tempfile.TemporaryDirectory(prefix="mlworker-bench-") as tmp:
        for database in args.databases.split(","):
            if database not in ("sqlite", "postgres"):
                parser.error(f"unknown database {database!r}: sqlite or postgres")
            with database_server(database, Path(tmp)) as served:
                processes = len(served.server.pids()) - 1
                args.server_config = f"{processes} worker processes x 4 threads"
                for workers in args.workers:
                    levels.append(measure(served, database, workers, args))
                    print(report(levels[-1:], args).splitlines()[-1], flush=True)
    print(report(levels, args))
    if args.json:
        args.json.write_text(json.dumps([asdict(level) for level in levels], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
