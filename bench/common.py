"""What both benchmarks share: the real reference server, worker processes, /proc readings.

Everything here runs the installed console scripts next to this Python
(``mlworker-server``, ``mlworker``) as real processes on 127.0.0.1, with
every file in a temporary directory; the server starts as the tests and the
demo start it (``worker.reference_server``). Numbers come
from wall clocks (``time.time()``, the clock of the worker's log timestamps)
and from ``/proc/<pid>/stat`` (CPU in clock ticks, Linux only).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

from worker.api import API
from worker.reference_server import ReferenceServer, clean_environment
from worker.threads import THREAD_VARIABLES

T = TypeVar("T")
BIN = Path(sys.executable).parent
ADMIN = "bench-worker"
ADMIN_PASSWORD = "bench-Pw-4t7"  # noqa: S105 - the throw-away account of a throw-away server
START_DEADLINE = 60.0
TICK = os.sysconf("SC_CLK_TCK")  # /proc CPU times count these per second


def report_in_tmp(measure: Callable[[Any, Path], str], args: Any) -> int:
    """Run ``measure(args, tmp)`` in a temporary directory of its own and print its report."""
    with tempfile.TemporaryDirectory(prefix="mlworker-bench-") as tmp:
        print(measure(args, Path(tmp)))
    return 0


def one_blas_thread() -> None:
    """What job processes get: one BLAS/OpenMP thread and Agg; call it before numpy loads."""
    if "numpy" in sys.modules:
        raise RuntimeError("numpy was imported before the thread variables were set")
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    os.environ["MPLBACKEND"] = "Agg"


def write_dataset(path: Path, points: int, *, seed: int = 0) -> Path:
    """A 2-feature, 2-class CSV of ``points`` rows: two overlapping Gaussian blobs.

    Written without numpy, so that a benchmark can set the BLAS thread
    variables before anything loads numpy (as the worker's job processes do).
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(points):
        label = rng.randrange(2)
        x, y = (rng.gauss(1.5 * label, 1.0) for _axis in range(2))
        rows.append(f"{x:.6f},{y:.6f},{label}")
    path.write_text("x,y,label\n" + "\n".join(rows) + "\n")
    return path


class BenchServer(ReferenceServer):
    """``mlworker-server run`` on a free loopback port, with an admin (worker) account."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        # env: e.g. DATABASE_URL, for a server on PostgreSQL
        super().__init__(data_dir, env=env, start_deadline=START_DEADLINE)

    def start(self) -> None:
        """Create the admin account, then start the server and wait until it answers."""
        self.add_user(ADMIN, ADMIN_PASSWORD, admin=True)
        super().start()

    def import_dataset(self, csv: Path, name: str, task: str, *extra: str) -> int:
        """Import ``csv`` with a seeded random 0.6/0.2/0.2 split; the dataset id."""
        return super().import_dataset(csv, name, task, "--seed", "0", *extra)

    def pids(self) -> list[int]:
        """The server's processes now: gunicorn's arbiter and its workers."""
        assert self.process is not None
        return [stat.pid for stat in process_tree(self.process.pid)]

    def api(self) -> API:
        """A session as the admin (worker) account."""
        return API(ADMIN, ADMIN_PASSWORD, self.url, retry_for=0)


def start_worker(host: str, workdir: Path, *flags: str) -> subprocess.Popen[bytes]:
    """``mlworker run`` as the admin account, JSON logs to ``workdir/worker.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [str(BIN / "mlworker"), "run", "--host", host, "--username", ADMIN]
    args += ["--spool-dir", str(workdir / "spool"), "--cache-dir", str(workdir / "cache")]
    args += ["--startup-jitter", "0", "--log-format", "json", *flags]
    env = clean_environment({"MLWORKER_PASSWORD": ADMIN_PASSWORD, "PYTHONUNBUFFERED": "1"})
    with (workdir / "worker.log").open("wb") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM (SIGKILL to the group if it hangs); the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def events(log: Path, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON lines of a worker log (``event`` only, when given), in order."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and event in (None, record.get("event")):
            found.append(record)
    return found


def timestamp(record: Mapping[str, Any]) -> float:
    """A log line's ISO UTC ``timestamp`` as seconds since the epoch."""
    return datetime.fromisoformat(str(record["timestamp"])).timestamp()


def wait_for(condition: Callable[[], T], what: str, deadline: float) -> T:
    """Poll ``condition()`` until it is truthy; RuntimeError after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not (value := condition()):
        if time.monotonic() > end:
            raise RuntimeError(f"gave up after {deadline} s waiting for {what}")
        time.sleep(0.05)
    return value


@dataclass(frozen=True)
class ProcStat:
    """A process's identity and CPU time, from ``/proc/<pid>/stat``."""

    pid: int
    ppid: int
    start: int  # clock ticks after boot: with pid, names one process for good
    name: str
    cpu: float  # user + system seconds, all threads, children not included
    children_cpu: float  # user + system seconds of the children it has waited for


def proc_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # After "pid (comm) ": state ppid ... utime(11) stime(12) cutime(13) cstime(14) ...
    # starttime(19)
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        start=int(fields[19]),
        name=name,
        cpu=(int(fields[11]) + int(fields[12])) / TICK,
        children_cpu=(int(fields[13]) + int(fields[14])) / TICK,
    )


def process_tree(root: int) -> list[ProcStat]:
    """``root`` and all its descendants alive now."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    stats = [stat for pid in pids if (stat := proc_stat(pid)) is not None]
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    tree = [s for s in stats if s.pid == root]
    for stat in tree:  # grows while it is walked: breadth first
        tree.extend(children.get(stat.pid, []))
    return tree


def command_line(pid: int) -> str:
    """The process's command line, shortened, for reports."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text if len(text) <= 90 else text[:87] + "..."


Probe = Callable[[], float | None]  # CPU seconds now, or None when there is nothing to read


class CpuSampler:
    """Reads CPU-seconds probes every ``interval`` s in a thread, keeping (wall time, value)."""

    def __init__(self, probes: Mapping[str, Probe], interval: float = 0.02) -> None:
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in probes}
        self._probes = probes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for name, probe in self._probes.items():
                if (value := probe()) is not None:
                    self.samples[name].append((now, value))
            self._stop.wait(self._interval)

    def between(self, name: str, start: float, end: float) -> float:
        """CPU seconds of probe ``name`` from wall time ``start`` to ``end``."""
        return self._at(name, end) - self._at(name, start)

    def _at(self, name: str, when: float) -> float:
        """The probe's value at ``when``, linear between the nearest samples."""
        samples = self.samples[name]
        if not samples:
            raise RuntimeError(f"no CPU sample of {name}")
        before = [(t, cpu) for t, cpu in samples if t <= when] or samples[:1]
        after = [(t, cpu) for t, cpu in samples if t >= when] or samples[-1:]
        (t0, cpu0), (t1, cpu1) = before[-1], after[0]
        return cpu0 if t1 == t0 else cpu0 + (cpu1 - cpu0) * (when - t0) / (t1 - t0)


def own_cpu(pid: int) -> Probe:
    """A probe of one process's own CPU seconds (all its threads)."""
    return lambda: None if (stat := proc_stat(pid)) is None else stat.cpu


def tree_cpu(pids: Sequence[int]) -> Probe:
    """A probe of the CPU of these processes and of their children they have reaped."""

    def probe() -> float | None:
        stats = [stat for pid in pids if (stat := proc_stat(pid)) is not None]
        return sum(stat.cpu + stat.children_cpu for stat in stats) if stats else None

    return probe


def child_cpu(parent: int, marker: str, rescan: float = 0.5) -> Probe:
    """A probe of the CPU of the child of ``parent`` whose command line has ``marker``: its
    own, its live descendants' (warm job processes live through a whole run) and what it
    and they have reaped.

    The child and its descendants are looked for at most every ``rescan`` seconds (each
    look reads all of ``/proc``); None until the child is found. A descendant born since
    the last look is counted from the next one on, with all its CPU so far.
    """
    found: list[int] = []
    members: list[int] = []
    looked = [0.0]

    def probe() -> float | None:
        if time.monotonic() - looked[0] > rescan:
            looked[0] = time.monotonic()
            if not found:
                children = [s.pid for s in process_tree(parent) if s.ppid == parent]
                found.extend(pid for pid in children if marker in command_line(pid))
            if found:
                members[:] = [s.pid for s in process_tree(found[0])]
        return tree_cpu(members)() if members else None

    return probe


@dataclass(frozen=True)
class Exchange:
    """One request relayed by :class:`CountingProxy`."""

    method: str
    path: str
    status: int
    seconds: float  # from the request's arrival to the server's whole answer


class CountingProxy:
    """A recording HTTP reverse proxy on 127.0.0.1 in front of ``upstream``, in a thread."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"the upstream must be http://HOST:PORT/, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), _Relay)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, pattern: str) -> int:
        """How many relayed requests fully match ``method`` and the path regex ``pattern``."""
        regex = re.compile(pattern)
        with self.lock:
            return sum(1 for e in self.exchanges if e.method == method and regex.fullmatch(e.path))


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: CountingProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about a client that left (a worker abandons its long poll when it stops)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class _Relay(BaseHTTPRequestHandler):
    """Relays each request over a new upstream connection.

    A new one each time, because the server closes a kept-alive connection
    after a few idle seconds, and an idle worker polls less often than that;
    on loopback a connection costs a fraction of a millisecond.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the exchanges are recorded instead."""

    def _relay(self) -> None:
        started = time.perf_counter()
        assert isinstance(self.server, _ProxyServer)
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        seconds = time.perf_counter() - started
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        with proxy.lock:
            path = urlsplit(self.path).path
            proxy.exchanges.append(Exchange(self.command, path, answer.status, seconds))

    do_GET = do_POST = do_PUT = do_DELETE = _relay  # http.server's names


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly as numpy's default does."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    """Seconds as milliseconds with one decimal."""
    return f"{seconds * 1000:.1f} ms"


def machine() -> str:
    """One line about where the numbers come from."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    python = sys.version.split()[0]
    return f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min), Python {python}"
