"""`mlworker run --processes N`: a supervisor of real worker processes against the real server.

Jobs of the ``test_gate`` plugin (``fleet_helpers``) wait in ``fit`` until the test opens
their gate, so a test knows which jobs are running, and on which worker, when it signals.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer
from daemon_helpers import (
    admin_api,
    clear_jobs,
    spooled,
    start_worker,
    submit_jobs,
    wait_for,
    worker_server,
)
from fleet_helpers import (
    Gates,
    open_gates_and_end,
    per_job,
    running,
    server_jobs,
    start_fleet,
    wait_final,
    workers,
)

pytestmark = pytest.mark.slow

LEASE = 15  # seconds: the time limit of the job whose worker is killed (no lease grace)
STARTUP = 120.0  # seconds for three workers to start their job runners on a loaded machine
SESSIONS = "from django.contrib.sessions.models import Session; print(Session.objects.count())"
BATCH: list[tuple[str, str, Mapping[str, Any]]] = [
    ("knn", "iris", {"n_neighbors": 5}),
    ("decision_tree", "moons", {"max_depth": 4}),
    ("naive_bayes", "wine", {}),
    ("ridge", "diabetes", {"alpha": 0.5}),
    ("kmeans", "blobs", {"n_clusters": 3, "n_init": 2}),
]


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account, no pending jobs and no lease grace."""
    return worker_server(lambda **options: start_server(**options, lease_grace=0))


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    """Gates for ``test_gate`` jobs; at the end all open, and no process outlives the test."""
    yield from open_gates_and_end(tmp_path)


def _pid(worker_name: str) -> int:
    """The pid in an ``X-Worker`` name, ``host:pid``."""
    return int(worker_name.rpartition(":")[2])


def test_three_processes_share_a_batch_once_and_a_killed_worker_is_replaced(
    server: RunningServer, gates: Gates, tmp_path: Path
) -> None:
    """3 processes share a batch, no job twice; a SIGKILLed one is replaced, its job re-leased."""
    admin = admin_api(server.url)
    gated = ("test_gate", "moons", {"gate": "held"})
    held = submit_jobs(admin, [(*gated, LEASE)]) + submit_jobs(admin, [gated, gated])
    batch = submit_jobs(admin, BATCH)
    logins = int(server.shell(SESSIONS))
    with start_fleet(tmp_path, server.url, gates, 3) as fleet:
        wait_for(lambda: len(gates.started("held")) == 3, "three held jobs", STARTUP)
        # A worker runs one job at a time: three jobs at once are three processes at work.
        holders = {fit["worker"] for fit in gates.started("held")}
        assert len(holders) == 3
        claimed = server_jobs(server)  # X-Worker names are host:pid of the worker processes
        assert {_pid(claimed[job_id]["worker"]) for job_id in held} == holders
        victim = _pid(claimed[held[0]]["worker"])
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: victim not in (now := workers(fleet.pid)) and len(now) == 3,
            "the killed worker to be replaced",
        )
        gates.open("held")
        results = {job_id: wait_final(admin, job_id) for job_id in held + batch}
        fleet.signal(signal.SIGTERM)
        assert fleet.wait() == 0

    assert {r["status"] for r in results.values()} == {"done"}
    jobs = server_jobs(server)
    assert {job_id: jobs[job_id]["attempt"] for job_id in held + batch} == {
        job_id: 2 if job_id == held[0] else 1 for job_id in held + batch
    }
    assert _pid(jobs[held[0]]["worker"]) != victim
    exactly_once = dict.fromkeys(held + batch, 1)
    assert per_job(fleet, "job finished") == exactly_once
    assert per_job(fleet, "result delivered") == exactly_once
    assert not any(line["duplicate"] for line in fleet.events("result delivered"))
    assert fleet.events("worker exited", pid=victim, exit_status=-signal.SIGKILL)
    assert len(fleet.events("worker started")) == 4
    assert spooled(tmp_path) == 0
    # The supervisor logged in once for its three first workers; the replacement by itself.
    assert int(server.shell(SESSIONS)) - logins == 2


def test_ctrl_c_lets_running_jobs_finish_and_a_second_signal_aborts_them(
    server: RunningServer, gates: Gates, tmp_path: Path
) -> None:
    """Ctrl-C: no more claims, running jobs finish and deliver; a TERM aborts the rest: exit 0."""
    admin = admin_api(server.url)
    finish, abort = submit_jobs(
        admin,
        [("test_gate", "moons", {"gate": "finish"}), ("test_gate", "moons", {"gate": "abort"})],
    )
    with start_fleet(tmp_path, server.url, gates, 3) as fleet:
        wait_for(
            lambda: gates.started("finish") and gates.started("abort"), "two running jobs", STARTUP
        )
        os.killpg(fleet.pid, signal.SIGINT)  # Ctrl-C in a terminal: to the whole group
        wait_for(lambda: fleet.events("worker exited"), "the idle worker to stop", STARTUP)
        late = submit_jobs(admin, [("knn", "iris", {})])[0]
        gates.open("finish")
        assert wait_final(admin, finish)["status"] == "done"
        wait_for(lambda: len(fleet.events("worker exited")) == 2, "the finished worker to stop")
        assert fleet.alive()  # the job behind the closed gate still runs
        fleet.signal(signal.SIGTERM)
        assert fleet.wait() == 0

    aborted = admin.get_job_result(abort)
    assert (aborted["status"], aborted["message"]) == ("failed", "worker shut down")
    assert (admin.get_job_result(late)["status"], server_jobs(server)[late]["attempt"]) == (
        "pending",
        0,
    )
    assert [line["exit_status"] for line in fleet.events("worker exited")] == [0, 0, 0]
    assert spooled(tmp_path) == 0
    clear_jobs(server)  # the late job is no later test's business


def test_refused_login_stops_the_supervisor_with_78(server: RunningServer, tmp_path: Path) -> None:
    """A refused login exits 78 before any worker process is forked, so none is respawned."""
    with start_worker(
        tmp_path, server.url, "--processes", "3", env={"MLWORKER_PASSWORD": "not-the-password"}
    ) as supervisor:
        assert supervisor.wait() == 78
    assert supervisor.events("cannot start")
    assert not supervisor.events("worker started")


def test_a_worker_refused_its_first_claim_stops_the_supervisor_with_78(
    server: RunningServer, tmp_path: Path
) -> None:
    """Workers without admin rights exit 78; the supervisor stops with 78, respawning none.

    The first refusal stops the others: one still logging in then is cut short by the
    stop signal and exits 0, so only the first exit status is certain to be 78.
    """
    with start_worker(
        tmp_path,
        server.url,
        *("--processes", "2", "--username", "student"),
        env={"MLWORKER_PASSWORD": "student"},
    ) as supervisor:
        assert supervisor.wait(STARTUP) == 78
    assert len(supervisor.events("worker started")) == 2
    statuses = [line["exit_status"] for line in supervisor.events("worker exited")]
    assert len(statuses) == 2
    assert statuses[0] == 78
    assert set(statuses) <= {0, 78}


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    server: RunningServer, gates: Gates, tmp_path: Path
) -> None:
    """Workers whose supervisor was SIGKILLed notice, stop claiming and exit on their own."""
    with start_fleet(tmp_path, server.url, gates, 2) as fleet:
        wait_for(lambda: len(fleet.events("worker ready")) == 2, "two ready workers", STARTUP)
        pids = workers(fleet.pid)
        os.kill(fleet.pid, signal.SIGKILL)
        assert fleet.wait() == -signal.SIGKILL
        wait_for(lambda: len(fleet.events("worker stopped")) == 2, "the orphans to stop")
        wait_for(lambda: not any(map(running, pids)), "the orphans to exit")
