"""Claim races and lease expiry, checked through worker.api against any running server.

The SQLite tests (``test_server_leases.py``) and the PostgreSQL tests
(``test_server_postgres.py``) run these same checks, so both databases are held to one
standard: many concurrent claimers, each with its own session, never get the same job, and
a job whose lease passed comes back. The lease checks need a server started with
``lease_grace=0``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from conftest import RunningServer
from server_helpers import wait_for

from worker.api import API

CLAIMERS = 16
T = TypeVar("T")


def drain(admin: API) -> None:
    """Fail every pending job, so a check starts with an empty queue."""
    while (job_id := admin.request_job()) is not None:
        admin.update_job_details(job_id, None, None, None, None, None, success=False)


def all_at_once(server: RunningServer, call: Callable[[API], T]) -> list[T]:
    """Run ``call`` in CLAIMERS threads, each with its own session, released at once."""
    start = threading.Barrier(CLAIMERS)

    def one(index: int) -> T:
        api = server.api("backend", "foobar", worker_id=f"claimer-{index}")
        # The call gets a connection of its own: on a loaded machine the barrier may hold
        # longer than the server keeps an idle connection open (2 s), and a request sent
        # as the server closes it is reset before the server reads it.
        api.close()
        start.wait(timeout=60)
        return call(api)

    with ThreadPoolExecutor(CLAIMERS) as pool:
        return list(pool.map(one, range(CLAIMERS)))


def check_one_job_one_winner(server: RunningServer, admin: API, dataset_id: int) -> None:
    """CLAIMERS simultaneous requests for one pending job: one gets it, the rest get None."""
    drain(admin)
    job_id = admin.submit_job("knn", dataset_id)
    answers = all_at_once(server, lambda api: api.request_job())
    assert sorted(answers, key=str) == [job_id] + [None] * (CLAIMERS - 1)
    assert admin.get_job_details(job_id)["attempt"] == 1
    code = f"from server.models import Job; print(Job.objects.get(pk={job_id}).worker)"
    assert server.shell(code).startswith("claimer-")


def check_never_handed_out_twice(
    server: RunningServer, admin: API, dataset_id: int, jobs: int = 40
) -> None:
    """CLAIMERS claimers racing until the queue is empty: every job is handed out once."""
    drain(admin)
    submitted = {admin.submit_job("knn", dataset_id) for _ in range(jobs)}

    def claim_until_empty(api: API) -> list[int]:
        claimed: list[int] = []
        while (job_id := api.request_job()) is not None:
            claimed.append(job_id)
        return claimed

    handed_out = Counter(
        job for claimed in all_at_once(server, claim_until_empty) for job in claimed
    )
    assert set(handed_out) == submitted
    assert set(handed_out.values()) == {1}


def check_lease_expiry(admin: API, dataset_id: int) -> None:
    """A 1 s job never updated comes back pending twice, then fails with "worker lost"."""
    drain(admin)
    job_id = admin.submit_job("knn", dataset_id, time_limit=1)
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
