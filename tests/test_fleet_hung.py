"""A hung worker process without systemd: the supervisor kills that one worker and restarts it.

The end-to-end test stops one of two real worker processes with SIGSTOP while both run a
``test_gate`` job (``fleet_helpers``); the policy tests check which slots count as hung.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import admin_api, spooled, submit_jobs, wait_for, worker_server
from fleet_helpers import (
    Gates,
    open_gates_and_end,
    per_job,
    server_jobs,
    start_fleet,
    wait_final,
    workers,
)

from worker.config import load_settings
from worker.errors import ConfigError
from worker.lifecycle import Shutdown
from worker.sdnotify import Notifier
from worker.supervisor import Slot, Supervisor, silent

pytestmark = pytest.mark.slow  # a real server and a supervised fleet of workers

LEASE = 20  # seconds: the time limit of the hung worker's job (no lease grace)
# seconds: --worker-timeout. Not the least allowed (10): on a loaded machine a healthy
# worker waiting for its next job process can be silent for 10 s.
BOUND = 30
STARTUP = 120.0  # seconds for two workers to start their job runners on a loaded machine
FAST = ("--request-timeout", "5", "--poll-max", "1", "--worker-timeout", str(BOUND))


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account, no pending jobs and no lease grace."""
    return worker_server(lambda **options: start_server(**options, lease_grace=0))


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    """Gates for ``test_gate`` jobs; at the end all open, and no process outlives the test."""
    yield from open_gates_and_end(tmp_path)


def test_a_stopped_worker_is_killed_and_replaced_while_the_other_goes_on(
    server: RunningServer, gates: Gates, tmp_path: Path
) -> None:
    """SIGSTOP one of two busy workers: it alone is killed after the bound and replaced; its
    job comes back through the lease and is done once, the other's job is done by it."""
    admin = admin_api(server.url)
    hung_job, other_job = submit_jobs(
        admin,
        [("test_gate", "moons", {"gate": "held"}, LEASE), ("test_gate", "moons", {"gate": "held"})],
    )
    with start_fleet(tmp_path, server.url, gates, 2, *FAST) as fleet:
        wait_for(lambda: len(gates.started("held")) == 2, "two held jobs", STARTUP)
        holders = {fit["worker"] for fit in gates.started("held")}
        claimed = server_jobs(server)  # X-Worker names are host:pid of the worker processes
        victim = int(claimed[hung_job]["worker"].rpartition(":")[2])
        (survivor,) = holders - {victim}
        assert int(claimed[other_job]["worker"].rpartition(":")[2]) == survivor
        os.kill(victim, signal.SIGSTOP)
        wait_for(
            lambda: fleet.events("worker hung; killing it", pid=victim),
            "the stopped worker to be killed",
            BOUND * 6,
        )
        wait_for(
            lambda: victim not in (now := workers(fleet.pid)) and len(now) == 2,
            "the killed worker to be replaced",
        )
        gates.open("held")
        results = {job_id: wait_final(admin, job_id) for job_id in (hung_job, other_job)}
        fleet.signal(signal.SIGTERM)
        assert fleet.wait() == 0

    assert {r["status"] for r in results.values()} == {"done"}
    jobs = server_jobs(server)
    assert (jobs[hung_job]["attempt"], jobs[other_job]["attempt"]) == (2, 1)
    assert jobs[other_job]["worker"].endswith(f":{survivor}")  # the survivor finished its job
    killed = fleet.events("worker hung; killing it")
    assert [line["pid"] for line in killed] == [victim]
    assert killed[0]["silent_seconds"] > BOUND
    assert fleet.events("worker exited", pid=victim, exit_status=-signal.SIGKILL)
    assert fleet.events("worker exited", pid=survivor, exit_status=0)
    assert per_job(fleet, "result delivered") == {hung_job: 1, other_job: 1}
    assert spooled(tmp_path) == 0


def test_only_workers_heard_from_then_silent_past_the_bound_are_hung() -> None:
    """A worker counts as hung only once it reported and then stayed silent past the bound."""
    now = 1000.0
    slots = [
        Slot(0, pid=10, last_seen=now - 11),  # silent past the bound
        Slot(1, pid=11, last_seen=now - 9),  # within it
        Slot(2, pid=12, last_seen=0),  # not heard from yet: starting
        Slot(3, pid=None, last_seen=now - 50),  # not running: restarting
    ]
    assert [slot.number for slot in silent(slots, now, 10)] == [0]


def test_a_bound_below_a_slow_servers_silence_is_refused(tmp_path: Path) -> None:
    """worker_timeout at or below request_timeout plus poll_max is a configuration error."""
    flags = {"worker_timeout": "40", "request_timeout": "30", "poll_max": "10"}
    settings = load_settings(flags, {"HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"worker_timeout \(40 s, from --worker-timeout\)"):
        Supervisor(settings, Shutdown(), Notifier.from_environ({}), burst=False)
