"""Atomic claims and leases on the reference server, with real concurrent clients."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from conftest import RunningServer
from server_helpers import result_fields, wait_for, write_csv

from worker.api import API
from worker.errors import ConflictError

CLAIMERS = 16
T = TypeVar("T")


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


def drain(admin: API) -> None:
    """Fail every pending job, so a test starts with an empty queue."""
    while (job_id := admin.request_job()) is not None:
        admin.update_job_details(job_id, None, None, None, None, None, success=False)


def all_at_once(server: RunningServer, call: Callable[[API], T]) -> list[T]:
    """Run ``call`` in CLAIMERS threads, each with its own session, released at once."""
    start = threading.Barrier(CLAIMERS)

    def one(index: int) -> T:
        api = server.api("backend", "foobar", worker_id=f"claimer-{index}")
        start.wait(timeout=60)
        return call(api)

    with ThreadPoolExecutor(CLAIMERS) as pool:
        return list(pool.map(one, range(CLAIMERS)))


def test_one_job_sixteen_claims_exactly_one_wins(
    server: RunningServer, admin: API, toy: int
) -> None:
    """16 simultaneous requests for a single pending job: one gets it, 15 get None."""
    drain(admin)
    job_id = admin.submit_job("knn", toy)
    answers = all_at_once(server, lambda api: api.request_job())
    assert sorted(answers, key=str) == [job_id] + [None] * (CLAIMERS - 1)
    assert admin.get_job_details(job_id)["attempt"] == 1
    code = f"from server.models import Job; print(Job.objects.get(pk={job_id}).worker)"
    assert server.shell(code).startswith("claimer-")


def test_many_jobs_many_claimers_never_hand_out_twice(
    server: RunningServer, admin: API, toy: int
) -> None:
    """16 claimers racing over 40 jobs: every job is handed out exactly once."""
    drain(admin)
    jobs = {admin.submit_job("knn", toy) for _ in range(40)}

    def claim_until_empty(api: API) -> list[int]:
        claimed: list[int] = []
        while (job_id := api.request_job()) is not None:
            claimed.append(job_id)
        return claimed

    handed_out = Counter(
        job for claimed in all_at_once(server, claim_until_empty) for job in claimed
    )
    assert set(handed_out) == jobs
    assert set(handed_out.values()) == {1}


def test_expired_lease_requeues_then_fails_after_three_attempts(admin: API, toy: int) -> None:
    """A 1 s job never updated comes back pending twice, then fails with "worker lost"."""
    drain(admin)
    job_id = admin.submit_job("knn", toy, time_limit=1)
    for attempt in (1, 2, 3):
        assert admin.request_job() == job_id
        assert admin.get_job_details(job_id)["attempt"] == attempt
        expected = "pending" if attempt < 3 else "failed"
        wait_for(
            lambda expected=expected: admin.get_job_result(job_id)["status"] == expected,
            f"job {job_id} to be {expected} after attempt {attempt}",
        )
    result = admin.get_job_result(job_id)
    assert (result["status"], result["attempt"], result["message"]) == ("failed", 3, "worker lost")
    assert admin.request_job() is None


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
