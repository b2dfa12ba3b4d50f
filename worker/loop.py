"""The polling loop: claim a job, run it isolated, spool its result, go on.

One `JobLoop` per worker process. It asks the server for a job, holding a
long poll open where the server offers one and otherwise waiting with
exponential backoff and full jitter while there is none (`worker.claims`);
fetches the job's
details and dataset (points come from the machine-wide cache and become
arrays once per version, here, not in every job process); runs the job in a
child process (`worker.execute`); and hands its `Result` to delivery, which
spools it and sends it from a thread of its own. Every claimed job ends
through one path (`_finish`), whether it ran or was refused before running,
with one of the counted `OutcomeKind`s. While a job draws its pictures, the next one is
claimed (`worker.claims.ClaimAhead`) and run right after it, even after a first stop
signal: it is leased to this worker. A server that is away makes the
loop probe at the idle maximum; it never exits for it. Stop signals reach
the loop through `Shutdown`: the first ends the claiming, the second aborts
the running job, whose failure ("worker shut down") is spooled like any
other result.

Whatever a claimed job brings that the worker cannot use (details of the
wrong type or shape, params nested too deep, a dataset whose info or points
make no dataset, an answer too deep to parse) fails that job with a sentence
for the student (`worker.details`); the loop goes on. While the spool cannot
take a result that large (a full or read-only disk), the loop claims nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from algorithms.dataset import Dataset
from algorithms.errors import DatasetError
from algorithms.jobresult import JobResult
from worker.backoff import RETRY_AFTER_MAX, Backoff
from worker.cache import DatasetCache
from worker.claims import ClaimAhead, Claimer
from worker.config import Settings
from worker.delivery import Deliverer
from worker.details import JobDetails, JobFailed, check_info, parse_details
from worker.errors import (
    APIError,
    AuthenticationError,
    BadAnswerError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from worker.execute import JobOutcome, JobSpec, JobTimings, OutcomeKind
from worker.lifecycle import Shutdown
from worker.logs import job_context
from worker.reporting import Heartbeat, JobFinished, Reporter, ServerError, Status
from worker.result import Picture, Result, clip
from worker.seams import JobServer, Runner

_log = structlog.get_logger(__name__)

_T = TypeVar("_T")

__all__ = ["JobFailed", "JobLoop", "result_of"]


@dataclass(frozen=True)
class _Ended:
    """How a claimed job ended, whether it ran or not: what `_finish` spools, counts, logs."""

    algorithm: str
    kind: OutcomeKind
    message: str  # "" on success
    result: Result
    fetched: float  # when the job was ready to run, or refused
    timings: JobTimings | None  # None when it never ran


@dataclass
class JobLoop:
    """Claims and runs jobs until told to stop (or, in burst mode, until none is left)."""

    settings: Settings
    worker_id: str
    api: JobServer
    runner: Runner
    results: Deliverer  # spools each result (or holds it when the disk fails) and delivers it
    cache: DatasetCache
    shutdown: Shutdown
    reporter: Reporter
    _ahead: ClaimAhead | None = field(default=None, init=False, repr=False)

    def run(self, *, burst: bool = False) -> None:
        """Claim and run jobs until a stop signal (or, with `burst`, no job is left)."""
        claimer = Claimer(
            self.api,
            self.shutdown,
            self._heartbeat,
            long_poll=self.settings.long_poll,
            idle=Backoff(self.settings.poll_min, self.settings.poll_max),
        )
        self._ahead = ahead = ClaimAhead(self.api)
        while True:
            self._heartbeat()
            early = ahead.take(self.shutdown, self._heartbeat)
            if early is not None and early.job is not None:
                claimer.reset()
                self._process(early.job, early.details)
                continue
            if self.shutdown.stopping:
                return
            if not self.results.writable():
                self._status("spool full or read-only: claiming no job")
                _log.warning("the spool cannot take a result; claiming no job until it can")
                self._sleep(self.settings.poll_max)
                continue
            if not burst:  # a claim may be held until a job comes: the process is idle meanwhile
                self._status("idle")
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
                self._sleep(claimer.pause())
                continue
            claimer.reset()
            self._process(claim.job, claim.details)

    def _process(self, job_id: int, given: Mapping[str, Any] | None = None) -> None:
        """Run one claimed job; its details come with the claim (``given``) or are asked for."""
        started = time.monotonic()
        with job_context(worker_id=self.worker_id, job_id=job_id):
            ended = self._attempt(job_id, given)
            if ended is not None:
                self._finish(ended, started)

    def _attempt(self, job_id: int, given: Mapping[str, Any] | None = None) -> _Ended | None:
        """Prepare and run the job; None when it is left to its lease (a stop, a 404)."""
        algorithm = "unknown"
        try:
            details = self._details(job_id, given)
            if details is None:
                return None
            algorithm = details.algorithm
            info = given.get("dataset_info") if given is not None else None
            spec = self._from_server(lambda: self._spec(details, info))
            if spec is None:
                return None
        except JobFailed as exc:
            return _refused(job_id, algorithm, "invalid", str(exc))
        except DatasetError as exc:  # the points make no dataset
            return _refused(job_id, algorithm, "dataset", str(exc))
        except Exception as exc:  # a bug the job must not outlive: it fails, the loop goes on
            _log.exception("the job could not be prepared")
            message = f"the worker could not prepare this job: {type(exc).__name__}: {exc}"
            return _refused(job_id, algorithm, "invalid", message)
        fetched = time.monotonic()
        self._status(f"job {job_id} {spec.algorithm} on {spec.dataset.name or details.dataset}")
        _log.info("job started", dataset_name=spec.dataset.name)
        outcome = self.runner.run(
            spec,
            time_limit=details.time_limit,
            memory_limit=self.settings.memory_limit,
            cancel=self._cancel,
            drawing=self._claim_ahead,
        )
        result = result_of(job_id, outcome)
        return _Ended(
            spec.algorithm, outcome.kind, outcome.message, result, fetched, outcome.timings
        )

    def _details(self, job_id: int, given: Mapping[str, Any] | None) -> JobDetails | None:
        """The job's checked details; None when it is left to its lease; JobFailed if unusable.

        ``given`` came with the claim; without it the server is asked (``GET jobs/<id>/``).
        """
        raw = (
            given
            if given is not None
            else self._from_server(lambda: self.api.get_job_details(job_id))
        )
        if raw is None:
            return None
        details = parse_details(job_id, raw, default_time_limit=self.settings.time_limit)
        structlog.contextvars.bind_contextvars(
            algorithm=details.algorithm, dataset=details.dataset, attempt=details.attempt
        )
        return details

    def _finish(self, ended: _Ended, started: float) -> None:
        """Hand the result to delivery; count the job and log its end with seconds per phase."""
        self.results.put(ended.result)
        finished = time.monotonic()
        self.reporter.report(JobFinished(ended.algorithm, ended.kind, finished - started))
        timings = ended.timings
        _log.info(
            "job finished",
            outcome=ended.kind,
            message=ended.message if ended.kind != "success" else None,
            seconds_fetch=round(ended.fetched - started, 4),
            seconds_start=_round(timings.start) if timings else None,
            seconds_run=_round(timings.run) if timings else None,
            seconds_spool=round(finished - ended.fetched - (timings.total if timings else 0), 4),
            seconds_total=round(finished - started, 4),
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
            except BadAnswerError as exc:  # asking again gets the same answer
                raise JobFailed(f"the server sent what the worker cannot use: {exc}") from None
            except APIError as exc:
                _log.error("job unavailable; leaving the job to its lease", error=str(exc))
                return None

    def _spec(self, details: JobDetails, info: object = None) -> JobSpec:
        """The job as the job process needs it, its dataset built."""
        return JobSpec(
            job_id=details.job_id,
            algorithm=details.algorithm,
            params=details.params,
            dataset=self._dataset(details.dataset, info),
            seed=details.seed,
        )

    def _dataset(self, dataset_id: int, given: object = None) -> Dataset:
        """The job's dataset, built; points cross the network once per version.

        Its info comes with the job's details where the server sends it
        (``dataset_info``), else from ``GET datasets/``. Raises DatasetError
        for points that make no dataset, with the sentence the job process
        would have reported.
        """
        listed = given if given is not None else self.api.get_datasets().get(dataset_id)
        if listed is None:
            raise JobFailed(f"dataset {dataset_id} does not exist on the server")
        info = check_info(dataset_id, listed)
        try:
            return self.cache.dataset(dataset_id, info, lambda: self.api.get_points(dataset_id))
        except NotFoundError as exc:
            raise JobFailed(f"dataset {dataset_id} does not exist on the server") from exc
        except ArithmeticError as exc:  # a JSON number too large for a float64 (or a label int64)
            raise DatasetError(f"{type(exc).__name__}: {exc}") from exc
        except RecursionError:
            raise JobFailed(
                f"dataset {dataset_id} holds values nested too deeply to read"
            ) from None

    def _claim_ahead(self) -> None:
        """Called while a job draws its pictures: claim the next one meanwhile, if claiming."""
        if self._ahead is not None and not self.shutdown.stopping and self.results.writable():
            self._ahead.start()

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
            wait = max(wait, min(exc.retry_after, RETRY_AFTER_MAX))
        _log.warning("server unreachable; probing again", error=str(exc), wait=round(wait, 1))
        self._sleep(wait)

    def _sleep(self, seconds: float) -> None:
        self.shutdown.sleep(seconds, self._heartbeat)

    def _status(self, text: str) -> None:
        waiting = self.results.waiting()
        self.reporter.report(
            Status(f"{text}; {waiting} results waiting for the server" if waiting else text)
        )


def result_of(job_id: int, outcome: JobOutcome) -> Result:
    """The update a job that ran gets: its scores, labels and pictures, or the failure."""
    ran = outcome.result
    if not outcome.ok or ran is None:
        return Result.failure(job_id, outcome.message)
    try:
        return _success(job_id, ran)
    except ValueError as exc:  # a plugin's NaN score, say: the protocol cannot carry it
        return Result.failure(job_id, f"the algorithm's result cannot be sent: {exc}")


def _success(job_id: int, ran: JobResult) -> Result:
    return Result(
        job_id=job_id,
        success=True,
        message=clip("\n".join(ran.warnings)) if ran.warnings else None,
        score_test=ran.score_test,
        score_validation=ran.score_validation,
        labels_training=tuple(ran.labels["training"]),
        labels_test=tuple(ran.labels["test"]),
        labels_validation=tuple(ran.labels["validation"]),
        extra_scores_test=ran.extra_scores_test,
        extra_scores_validation=ran.extra_scores_validation,
        pictures=tuple(Picture(picture.name, picture.png) for picture in ran.pictures),
    )


def _refused(job_id: int, algorithm: str, kind: OutcomeKind, message: str) -> _Ended:
    """A job that cannot run as given: failed with the sentence for the student."""
    return _Ended(algorithm, kind, message, Result.failure(job_id, message), time.monotonic(), None)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)
