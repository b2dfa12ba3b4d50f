"""`mlworker run --processes 2`: one job forkserver for the tree, its death and a worker's survived.

Real processes, counted from ``/proc``: a job forkserver runs multiprocessing's forkserver
(``python -c 'from multiprocessing.forkserver import main; ...'``); the job processes it
forks have the same command line, so a job forkserver is such a process whose parent is not.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import admin_api, submit_jobs, wait_for, worker_server
from fleet_helpers import (
    Gates,
    children,
    command_line,
    open_gates_and_end,
    parent,
    running,
    start_fleet,
    wait_final,
    workers,
)

pytestmark = pytest.mark.slow

STARTUP = 120.0  # seconds for the workers to start their job runners on a loaded machine
FORKSERVER = b"from multiprocessing.forkserver import main"
FALLBACK = "the shared job forkserver is gone; starting one of our own"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account and no pending jobs."""
    return worker_server(start_server)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    """Gates for ``test_gate`` jobs; at the end all open, and no process outlives the test."""
    yield from open_gates_and_end(tmp_path)


def descendants(root: int) -> list[int]:
    """Every process under ``root``, from ``/proc``."""
    found, todo = [], [root]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def job_forkservers(root: int) -> list[int]:
    """The job forkservers under ``root`` (not the job processes they forked)."""
    found = []
    for pid in descendants(root):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it just ended
            if FORKSERVER in command_line(pid) and FORKSERVER not in command_line(parent(pid)):
                found.append(pid)
    return found


def run_two_gated_jobs(server: RunningServer, gates: Gates, gate: str) -> list[dict[str, int]]:
    """Two jobs held at once, so one on each worker; what their fits recorded, once done."""
    admin = admin_api(server.url)
    jobs = submit_jobs(admin, [("test_gate", "moons", {"gate": gate})] * 2)
    wait_for(lambda: len(gates.started(gate)) == 2, f"two {gate} jobs running", STARTUP)
    fits = gates.started(gate)
    gates.open(gate)
    assert [wait_final(admin, job)["status"] for job in jobs] == ["done", "done"]
    return fits


def test_two_workers_share_one_job_forkserver(
    server: RunningServer, gates: Gates, tmp_path: Path
) -> None:
    """The supervisor's forkserver forks both workers' job processes; a restarted worker's too."""
    with start_fleet(tmp_path, server.url, gates, 2) as fleet:
        wait_for(lambda: len(fleet.events("worker ready")) == 2, "two ready workers", STARTUP)
        (shared,) = job_forkservers(fleet.pid)
        assert parent(shared) == fleet.pid
        fits = run_two_gated_jobs(server, gates, "first")
        assert {fit["worker"] for fit in fits} == workers(fleet.pid)
        assert {parent(fit["pid"]) for fit in fits} == {shared}

        victim = fits[0]["worker"]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: victim not in (now := workers(fleet.pid)) and len(now) == 2,
            "the killed worker to be replaced",
        )
        wait_for(lambda: len(fleet.events("worker ready")) == 3, "the new worker ready", STARTUP)
        fits = run_two_gated_jobs(server, gates, "second")
        assert {fit["worker"] for fit in fits} == workers(fleet.pid)
        assert {parent(fit["pid"]) for fit in fits} == {shared}
        assert job_forkservers(fleet.pid) == [shared]
        fleet.signal(signal.SIGTERM)
        assert fleet.wait() == 0
    assert not fleet.events(FALLBACK)
    assert not running(shared), "the supervisor left its forkserver behind"


def test_a_killed_forkserver_fails_the_running_job_and_the_workers_go_on(
    server: RunningServer, gates: Gates, tmp_path: Path
) -> None:
    """SIGKILL the shared forkserver: the running job fails, each worker starts its own.

    A worker started afterwards shares the new forkserver the supervisor launches.
    """
    admin = admin_api(server.url)
    with start_fleet(tmp_path, server.url, gates, 2) as fleet:
        wait_for(lambda: len(fleet.events("worker ready")) == 2, "two ready workers", STARTUP)
        (held,) = submit_jobs(admin, [("test_gate", "moons", {"gate": "held"})])
        wait_for(lambda: gates.started("held"), "the held job running", STARTUP)
        (shared,) = job_forkservers(fleet.pid)
        os.kill(shared, signal.SIGKILL)
        failed = wait_final(admin, held)
        assert (failed["status"], failed["message"]) == (
            "failed",
            "the algorithm's process ended unexpectedly (exit status 255)",
        )

        fits = run_two_gated_jobs(server, gates, "after")
        assert {fit["worker"] for fit in fits} == workers(fleet.pid)
        own = {fit["worker"]: parent(fit["pid"]) for fit in fits}
        assert {worker: parent(server) for worker, server in own.items()} == {
            worker: worker for worker in own
        }  # each worker forks from a forkserver of its own
        assert len(fleet.events(FALLBACK)) == 2
        assert not fleet.events("the job forkserver died; starting a new one")  # not yet needed

        victim, survivor = own
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: victim not in (now := workers(fleet.pid)) and len(now) == 2,
            "the killed worker to be replaced",
        )
        wait_for(lambda: len(fleet.events("worker ready")) == 3, "the new worker ready", STARTUP)
        (renewed,) = (pid for pid in job_forkservers(fleet.pid) if parent(pid) == fleet.pid)
        assert renewed != shared
        assert fleet.events("the job forkserver died; starting a new one", pid=shared)
        fits = run_two_gated_jobs(server, gates, "restarted")
        assert {parent(fit["pid"]) for fit in fits} == {renewed, own[survivor]}
        fleet.signal(signal.SIGTERM)
        assert fleet.wait() == 0
    wait_for(lambda: not any(map(running, [renewed, *own.values()])), "no forkserver left")
