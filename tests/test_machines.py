"""Several machines against one server on PostgreSQL, one of them killed outright mid-run.

Three machines are simulated on this one, all on loopback: each is its own process tree
(``mlworker run --processes 2``, in a session of its own), with its own worker ids, cache
and spool, and reaches the server through its own recording proxy, its network card as it
were, which counts its dataset downloads and times its claims.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import Worker, admin_api, spooled, start_worker, wait_for, worker_server
from fault_proxy import FaultProxy, _Answer
from fleet_helpers import children, server_jobs
from postgres_helpers import PostgresCluster, postgres_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MACHINES = 3
JOBS = 300
DATASETS = ("iris", "moons", "wine")
LEASE = 30  # seconds: each job's time limit (its lease): the killed machine's jobs come back
RUN_DEADLINE = 400.0  # seconds for the 300 jobs on a loaded 2-core machine
CLAIM = "/jobs/request/"


class TimedProxy(FaultProxy):
    """A proxy that forwards faithfully and times each request the server answered."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.timings: list[tuple[str, float]] = []  # (path, seconds), appends are atomic

    def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client: socket.socket,
    ) -> _Answer | None:
        started = time.monotonic()
        answer = super()._forward(method, target, headers, body, client)
        self.timings.append((target.split("?")[0], time.monotonic() - started))
        return answer


class SimulatedMachine:
    """One machine: its directory (cache, spool, logs), its proxy, its running supervisor."""

    def __init__(self, name: str, directory: Path, proxy: TimedProxy) -> None:
        self.name = name
        self.directory = directory
        self.proxy = proxy
        self.runs: list[Worker] = []

    def start(self) -> None:
        """``mlworker run --processes 2`` with this machine's cache, spool and worker ids."""
        flags = ("--processes", "2", "--worker-id", self.name, "--poll-max", "2")
        self.runs.append(start_worker(self.directory, self.proxy.url, *flags, burst=False))

    def kill(self) -> list[int]:
        """SIGKILL every process of the machine's runs, as a power cut would; their pids."""
        tree = [pid for run in self.runs if run.alive() for pid in _descendants(run.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for run in self.runs:
            run.process.wait()
        return tree

    def delivered(self) -> set[int]:
        """The jobs whose result the server accepted from this machine."""
        updates = self.proxy.results()
        return {_job(e.path) for e in updates if e.status == 200}

    def events(self, event: str) -> list[dict[str, object]]:
        """The ``event`` lines of every run of this machine (a killed run's included)."""
        return [line for run in self.runs for line in run.events(event)]

    def downloads(self) -> Counter[str]:
        """How often this machine fetched each dataset's points from the server."""
        return Counter(e.path for e in self.proxy.received("GET", r"/datasets/\d+/points/"))


def _descendants(root: int) -> list[int]:
    found, todo = [root], [root]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own, removed at the end."""
    with postgres_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer], cluster: PostgresCluster) -> RunningServer:
    """The demo server on PostgreSQL with the test worker account; leases without grace."""
    url = cluster.create_database("machines")
    return worker_server(
        lambda **options: start_server(**options, lease_grace=0, env={"DATABASE_URL": url})
    )


@pytest.fixture
def machines(server: RunningServer, tmp_path: Path) -> Iterator[list[SimulatedMachine]]:
    """Three machines' directories and proxies; every process of theirs ends with the test."""
    with contextlib.ExitStack() as stack:
        fleet = [
            SimulatedMachine(
                f"machine-{n}",
                tmp_path / f"machine-{n}",
                stack.enter_context(TimedProxy(server.url)),
            )
            for n in range(1, MACHINES + 1)
        ]
        try:
            yield fleet
        finally:
            for machine in fleet:
                machine.kill()


def test_three_machines_do_every_job_once_though_one_is_killed_mid_run(
    server: RunningServer, machines: list[SimulatedMachine]
) -> None:
    """300 jobs, 3 machines of 2 processes, one SIGKILLed whole and restarted: every job done
    once, no result lost, each dataset downloaded at most once per machine, no 5xx."""
    admin = admin_api(server.url)
    ids = {info["name"]: key for key, info in admin.get_datasets().items()}
    jobs = [
        admin.submit_job("test_ok", ids[DATASETS[n % len(DATASETS)]], {}, time_limit=LEASE)
        for n in range(JOBS)
    ]
    started = time.monotonic()
    for machine in machines:
        machine.start()
    victim = machines[1]
    wait_for(lambda: len(_done(machines)) >= JOBS // 3, "a third of the jobs", RUN_DEADLINE)
    killed = victim.kill()
    victim.start()  # the same cache and spool: what it spooled and did not deliver goes now
    wait_for(lambda: _done(machines) == set(jobs), "every job", RUN_DEADLINE)
    elapsed = time.monotonic() - started
    for machine in machines:
        machine.runs[-1].signal(signal.SIGTERM)
    assert [machine.runs[-1].wait() for machine in machines] == [0] * MACHINES

    rows = server_jobs(server)
    assert {rows[job]["status"] for job in jobs} == {"done"}
    again = {job for job in jobs if rows[job]["attempt"] > 1}  # handed out again after the kill
    updates = [e for m in machines for e in m.proxy.results()]
    assert {_job(e.path) for e in updates if e.status == 200} == set(jobs)  # none lost
    # The server refuses a second result only for a job whose lease ended with the victim.
    # (A result the victim was sending when it was killed has no answer: status None.)
    assert {_job(e.path) for e in updates if e.status not in (200, None)} <= again
    logged = Counter(
        int(str(line["job_id"]))
        for machine in machines
        for line in machine.events("result delivered")
        if not line["duplicate"]
    )
    assert set(logged.values()) == {1}, "a result accepted as new twice"
    for machine in machines:
        assert spooled(machine.directory) == 0, f"{machine.name} left results in its spool"
        assert set(machine.downloads().values()) <= {1}, f"{machine.name}: {machine.downloads()}"
        # Requests whose client left (the killed machine's held polls) have no answer.
        answers = [e.upstream_status for e in machine.proxy.exchanges() if e.status is not None]
        assert not [status for status in answers if status is None or status >= 500]
        workers = {rows[job]["worker"] for job in jobs if machine.name in rows[job]["worker"]}
        assert workers <= {f"{machine.name}-0", f"{machine.name}-1"}
    assert len(killed) >= 3  # the supervisor, its two workers (and their job runners)
    claims = sorted(s for m in machines for path, s in m.proxy.timings if path.endswith(CLAIM))
    print(
        f"\n{JOBS} jobs on {MACHINES} machines x 2 processes in {elapsed:.1f} s; "
        f"{len(killed)} processes of {victim.name} killed, {len(again)} jobs run again; "
        f"{len(claims)} claims: p50 {1000 * _percentile(claims, 50):.1f} ms, "
        f"p99 {1000 * _percentile(claims, 99):.1f} ms"
    )


def _done(machines: list[SimulatedMachine]) -> set[int]:
    return set().union(*(machine.delivered() for machine in machines))


def _job(path: str) -> int:
    """The job id in ``/jobs/<id>/update/`` or ``/jobs/<id>/finish/``."""
    return int(path.split("/")[2])


def _percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of sorted ``values`` (nearest rank)."""
    rank = max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))
    return values[rank]
