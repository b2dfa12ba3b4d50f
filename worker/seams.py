"""The edges the polling loop talks through, as protocols.

`JobLoop` needs five calls of the job server and one of the job runner;
naming them here keeps the loop independent of HTTP and of child processes.
In production they are `worker.api.API` and `worker.execute.JobRunner`;
`worker.testing` ships in-memory fakes of both, so the loop's policies are
tested in milliseconds, beside the end-to-end tests that prove the wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from worker.api import Claim
from worker.execute import JobOutcome, JobSpec

__all__ = ["JobServer", "Runner"]


class JobServer(Protocol):
    """What the loop asks of the job server (the protocol's worker calls)."""

    def request_job(self) -> int | None:
        """Claim the oldest pending job: its id, or None when none is pending."""

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """Claim, maybe held up to `wait` s (a long poll), maybe with the job's details."""

    def get_job_details(self, job_id: int) -> dict[str, Any]:
        """The claimed job: algorithm, dataset, params, and maybe time_limit, seed, attempt."""

    def get_datasets(self) -> dict[int, dict[str, Any]]:
        """Every dataset's info by id (name, task, features, target, version, ...)."""

    def get_points(self, dataset_id: int) -> list[dict[str, Any]]:
        """A dataset's points, labels included (the worker account is an admin)."""


class Runner(Protocol):
    """What the loop asks of the job runner: run one job, say how it ended, never raise."""

    def run(
        self,
        job: JobSpec,
        *,
        time_limit: float,
        memory_limit: int | None = None,
        cancel: Callable[[], bool] | None = None,
        drawing: Callable[[], None] | None = None,
    ) -> JobOutcome:
        """Run `job` within `time_limit` seconds; `cancel()` true stops it ("cancelled").

        `drawing()` is called once the job has its labels and scores and draws its pictures.
        """
