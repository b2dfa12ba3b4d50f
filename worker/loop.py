"""The polling loop: claim a job, run it isolated, spool its result, go on.

One `JobLoop` per worker process. It asks the server for a job, holding a
long poll open where the server offers one and otherwise waiting with
exponential backoff and full jitter while there is none (`worker.claims`); fetches the job's
details and dataset (points come from the machine-wide cache and become
arrays once per version, here, not in every job process); runs the job in a
child process (`worker.execute`); and writes the update to the outbox,
from which the delivery thread sends it. A server that is away makes the
loop probe at the idle maximum; it never exits for it. Stop signals reach
the loop through `Shutdown`: the first ends the claiming, the second aborts
the running job, whose failure ("worker shut down") is spooled like any
other result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from algorithms.dataset import Dataset
from algorithms.errors import DatasetError
from worker.backoff import Backoff
from worker.cache import DatasetCache
from worker.claims import Claimer
from worker.config import Settings
from worker.errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from worker.execute import JobOutcome, JobSpec, JobTimings
from worker.lifecycle import Shutdown
from worker.logs import job_context
from worker.outbox import Outbox
from worker.reporting import Heartbeat, JobFinished, Reporter, ServerError, Status
from worker.seams import JobServer, Runner

_log = structlog.get_logger(__name__)

MESSAGE_LIMIT = 10_000  # characters the protocol allows in `message`
_T = TypeVar("_T")


class JobFailed(Exception):
    """The job cannot run as given; the sentence goes to the student."""


@dataclass
class JobLoop:
    """Claims and runs jobs until told to stop (or, in burst mode, until none is left)."""

    settings: Settings
    worker_id: str
    api: JobServer
    runner: Runner
    outbox: Outbox
    cache: DatasetCache
    shutdown: Shutdown
    reporter: Reporter
    wake_delivery: Callable[[], None]  # a result is in the spool

    def run(self, *, burst: bool = False) -> None:
        """Claim and run jobs until a stop signal (or, with `burst`, no job is left)."""
        claimer = Claimer(
            self.api,
            self.shutdown,
            self._heartbeat,
            long_poll=self.settings.long_poll,
            idle=Backoff(self.settings.poll_min, self.settings.poll_max),
        )
        while not self.shutdown.stopping:
            self._heartbeat()
            try:
                claim = claimer.claim(burst=burst)
            except TransientError as exc:
                self._server_away(exc)
                continue
            except PermissionDeniedError:  # the account is no worker account: a restart cannot help
                raise
            except APIError as exc:  # login refused now, rights taken away: keep probing
                _log.error("the server refuses to hand out jobs", error=str(exc))
                self._server_away(exc)
                continue
            if claim.job is None:
                if burst:
                    return
                self._status("idle")
                self._sleep(claimer.pause())
                continue
            claimer.reset()
            self._process(claim.job, claim.details)

    def _process(self, job_id: int, details: Mapping[str, Any] | None = None) -> None:
        """Run one claimed job; its details come with the claim or are asked for."""
        started = time.monotonic()
        with job_context(worker_id=self.worker_id, job_id=job_id):
            if details is None:
                details = self._from_server(lambda: self.api.get_job_details(job_id))
            if details is None:
                return
            structlog.contextvars.bind_contextvars(
                algorithm=details.get("algorithm"),
                dataset=details.get("dataset"),
                attempt=details.get("attempt"),
            )
            try:
                spec = self._from_server(lambda: self._spec(job_id, details))
            except JobFailed as exc:
                self._spool(job_id, _failure(str(exc)), ())
                _log.info("job failed before running", outcome="invalid", message=str(exc))
                return
            except DatasetError as exc:  # _spec checked the algorithm before building the data
                refused = _data_refused(exc)
                self._finish(job_id, details["algorithm"], refused, started, time.monotonic())
                return
            if spec is None:
                return
            fetched = time.monotonic()
            dataset_name = spec.dataset.name or details.get("dataset")
            self._status(f"job {job_id} {spec.algorithm} on {dataset_name}")
            _log.info("job started", dataset_name=spec.dataset.name)
            outcome = self.runner.run(
                spec,
                time_limit=_time_limit(details, self.settings.time_limit),
                memory_limit=self.settings.memory_limit,
                cancel=self._cancel,
            )
            self._finish(job_id, spec.algorithm, outcome, started, fetched)

    def _finish(
        self, job_id: int, algorithm: str, outcome: JobOutcome, started: float, fetched: float
    ) -> None:
        """Spool the job's result, then count it and log its end with seconds per phase."""
        fields, pictures = result_fields(outcome)
        self._spool(job_id, fields, pictures)
        ended = time.monotonic()
        self.reporter.report(JobFinished(algorithm, outcome.kind, ended - started))
        _log.info(
            "job finished",
            outcome=outcome.kind,
            message=outcome.message if not outcome.ok else None,
            seconds_fetch=round(fetched - started, 4),
            seconds_start=_round(outcome.timings.start),
            seconds_run=_round(outcome.timings.run),
            seconds_spool=round(ended - fetched - outcome.timings.total, 4),
            seconds_total=round(ended - started, 4),
        )

    def _from_server(self, call: Callable[[], _T]) -> _T | None:
        """``call()``, which asks the server for what the claimed job needs, until it answers.

        While the server is away (or the session cannot be renewed) the loop
        probes at the idle maximum, as it does for claims: giving up would
        leave the job to its lease, idle for its whole time limit plus grace.
        None when a stop signal comes first or the server refuses for good
        (404, no rights): the lease then brings the job back.
        """
        while True:
            try:
                return call()
            except (TransientError, AuthenticationError) as exc:
                if self.shutdown.stopping:
                    _log.error("stopping; leaving the job to its lease", error=str(exc))
                    return None
                self._server_away(exc)
            except APIError as exc:
                _log.error("job unavailable; leaving the job to its lease", error=str(exc))
                return None

    def _spec(self, job_id: int, details: Mapping[str, Any]) -> JobSpec:
        """The job as the job process needs it; JobFailed for what a student must fix."""
        algorithm, params = details.get("algorithm"), details.get("params", {})
        if not isinstance(algorithm, str) or not algorithm:
            raise JobFailed("the job names no algorithm")
        if not isinstance(params, dict):
            raise JobFailed('the job\'s params must be a JSON object such as {"n_neighbors": 5}')
        seed = details.get("seed")
        return JobSpec(
            job_id=job_id,
            algorithm=algorithm,
            params=params,
            dataset=self._dataset(details.get("dataset"), details.get("dataset_info")),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        )

    def _dataset(self, dataset_id: object, given: object = None) -> Dataset:
        """The job's dataset, built; points cross the network once per version.

        Its info comes with the job's details where the server sends it
        (``dataset_info``), else from ``GET datasets/``. Raises DatasetError
        for points that make no dataset, with the sentence the job process
        would have reported.
        """
        if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
            raise JobFailed(f"the job's dataset must be a dataset id, not {dataset_id!r}")
        info = given if isinstance(given, dict) else self.api.get_datasets().get(dataset_id)
        if info is None:
            raise JobFailed(f"dataset {dataset_id} does not exist on the server")
        try:
            return self.cache.dataset(dataset_id, info, lambda: self.api.get_points(dataset_id))
        except NotFoundError as exc:
            raise JobFailed(f"dataset {dataset_id} does not exist on the server") from exc
        except ArithmeticError as exc:  # a JSON number too large for a float64 (or a label int64)
            raise DatasetError(f"{type(exc).__name__}: {exc}") from exc

    def _spool(self, job_id: int, fields: dict[str, Any], pictures: Any) -> None:
        self.outbox.put(job_id, fields, pictures)
        self.wake_delivery()

    def _cancel(self) -> bool:
        """Polled by the runner during a job: keeps the heartbeat going, reports an abort."""
        self._heartbeat()
        return self.shutdown.aborting

    def _heartbeat(self) -> None:
        self.reporter.report(Heartbeat())

    def _server_away(self, exc: APIError) -> None:
        self.reporter.report(ServerError())
        self._status("server unreachable")
        wait = self.settings.poll_max
        if isinstance(exc, TransientError) and exc.retry_after:
            wait = max(wait, exc.retry_after)
        _log.warning("server unreachable; probing again", error=str(exc), wait=round(wait, 1))
        self._sleep(wait)

    def _sleep(self, seconds: float) -> None:
        self.shutdown.sleep(seconds, self._heartbeat)

    def _status(self, text: str) -> None:
        waiting = self.outbox.count()
        self.reporter.report(
            Status(f"{text}; {waiting} results waiting for the server" if waiting else text)
        )


def result_fields(outcome: JobOutcome) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The update fields and pictures for a finished job, success or failure."""
    result = outcome.result
    if not outcome.ok or result is None:
        return _failure(outcome.message), []
    fields: dict[str, Any] = {
        "score_test": result.score_test,
        "score_validation": result.score_validation,
        "labels_training": result.labels["training"],
        "labels_test": result.labels["test"],
        "labels_validation": result.labels["validation"],
        "extra_scores_test": result.extra_scores_test,
        "extra_scores_validation": result.extra_scores_validation,
        "success": True,
    }
    if result.warnings:
        fields["message"] = _clip("\n".join(result.warnings))
    return fields, [(picture.name, picture.png) for picture in result.pictures]


def _data_refused(exc: DatasetError) -> JobOutcome:
    """A job whose points make no dataset: failed as an `AlgorithmError` in the job would be."""
    return JobOutcome(
        kind="error",
        message=str(exc),
        result=None,
        timings=JobTimings(start=None, run=None, total=0.0),
        exitcode=None,
    )


def _failure(message: str) -> dict[str, Any]:
    return {"success": False, "message": _clip(message)}


def _clip(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    return message[: MESSAGE_LIMIT - 1] + "…"


def _time_limit(details: Mapping[str, Any], default: float) -> float:
    limit = details.get("time_limit")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0:
        return float(limit)
    return default


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)
