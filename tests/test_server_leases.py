"""Atomic claims and leases on the reference server, with real concurrent clients."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import RunningServer
from lease_checks import (
    check_lease_expiry,
    check_never_handed_out_twice,
    check_one_job_one_winner,
    drain,
)
from server_helpers import result_fields, wait_for, write_csv

from worker.api import API
from worker.errors import ConflictError

pytestmark = pytest.mark.slow  # end to end: waits for real leases to run out


@pytest.fixture(scope="module")
def server(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    """A server without demo data whose leases have no grace: a 1 s job expires in 1 s."""
    running = start_server(demo=False, lease_grace=0)
    running.add_user("backend", "foobar", admin=True)
    running.add_user("student", "student")
    csv = write_csv(
        tmp_path_factory.mktemp("csv") / "toy.csv", {"training": 6, "test": 3, "validation": 3}
    )
    running.import_dataset(csv, "toy", "classification")
    return running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> API:
    return server.api("backend", "foobar")


@pytest.fixture(scope="module")
def toy(admin: API) -> int:
    return next(iter(admin.get_datasets()))


def test_one_job_sixteen_claims_exactly_one_wins(
    server: RunningServer, admin: API, toy: int
) -> None:
    """16 simultaneous requests for a single pending job: one gets it, 15 get None."""
    check_one_job_one_winner(server, admin, toy)


def test_many_jobs_many_claimers_never_hand_out_twice(
    server: RunningServer, admin: API, toy: int
) -> None:
    """16 claimers racing over 40 jobs: every job is handed out exactly once."""
    check_never_handed_out_twice(server, admin, toy)


def test_expired_lease_requeues_then_fails_after_three_attempts(admin: API, toy: int) -> None:
    """A 1 s job never updated comes back pending twice, then fails with "worker lost"."""
    check_lease_expiry(admin, toy)


def test_late_update_after_requeue_conflicts(admin: API, toy: int) -> None:
    """A worker whose lease expired and whose job went back to pending gets 409."""
    drain(admin)
    job_id = admin.submit_job("knn", toy, time_limit=1)
    assert admin.request_job() == job_id
    wait_for(lambda: admin.get_job_result(job_id)["status"] == "pending", "the lease to expire")
    with pytest.raises(ConflictError):
        admin.update_job_details(job_id, **result_fields(admin, toy))
    assert admin.request_job() == job_id
    assert admin.update_job_details(job_id, **result_fields(admin, toy)) == {"success": True}


def test_state_survives_a_restart(server: RunningServer, admin: API, toy: int) -> None:
    """After a restart on the same data directory, jobs and sessions are still there."""
    drain(admin)
    job_id = admin.submit_job("knn", toy)
    server.restart()
    assert admin.get_job_result(job_id)["status"] == "pending"
    assert admin.request_job() == job_id
