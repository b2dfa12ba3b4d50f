"""Fakes of the worker's edges, shipped with it, for tests that run in milliseconds.

As dramatiq's stub broker and ``structlog.testing`` do, these stand in for
the real edges behind the same protocols, so that a policy is tested without
a server, a child process or patching anything inside the worker:

- `FakeJobServer`: the job server in memory, as the loop (`worker.seams.JobServer`)
  and delivery (``update_job_details``) see it, with failures on demand.
- `FakeRunner`: a `worker.seams.Runner` that runs the real algorithm in this
  process (no child, no limits), or answers what a test scripts.
- `RecordingReporter`: keeps every `worker.reporting` event.
- `MockAdapter`: a ``requests`` transport adapter answering from a function,
  for `worker.api.API(adapter=...)` without sockets (as httpx's ``MockTransport``).
- `settings_for`: real `Settings` for a test directory, with fast polls.

End-to-end tests (real server, real job processes, real signals) prove the
wiring; these prove the policies.
"""

from __future__ import annotations

import http.client
import io
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPHeaderDict, HTTPResponse

from algorithms.errors import AlgorithmError
from algorithms.run import run_algorithm
from worker.api import Claim
from worker.config import Settings, load_settings
from worker.errors import APIError, NotFoundError
from worker.execute import JobOutcome, JobSpec, JobTimings, OutcomeKind
from worker.reporting import Event

__all__ = [
    "Answer",
    "FakeJobServer",
    "FakeRunner",
    "MockAdapter",
    "RecordingReporter",
    "RunCall",
    "failed",
    "json_answer",
    "settings_for",
    "toy_points",
]

E = TypeVar("E", bound=Event)


def settings_for(directory: Path, **flags: object) -> Settings:
    """Settings as ``mlworker run`` would read them, with spool and cache in ``directory``.

    Polls are fast (10 ms up to 50 ms) and the start-up jitter is off unless
    ``flags`` says otherwise; no environment variable or file is read.
    """
    given: dict[str, object] = {
        "spool_dir": str(directory / "spool"),
        "cache_dir": str(directory / "cache"),
        "poll_min": 0.01,
        "poll_max": 0.05,
        "startup_jitter": 0,
    }
    given.update(flags)
    return load_settings(given, {"HOME": str(directory)})


def toy_points(count: int = 24) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A small 2-class dataset the way the protocol sends it: (info, points), half training."""
    info = {"name": "toy", "task": "classification", "features": ["x", "y"], "target": "label"}
    sets = ("training", "training", "test", "validation")
    points = [
        {"id": i + 1, "x": float(i % 7), "y": float(i % 5), "label": i % 2, "set": sets[i % 4]}
        for i in range(count)
    ]
    sizes = {name: sum(point["set"] == name for point in points) for name in set(sets)}
    return {**info, "version": "1", "points": sizes}, points


_UPDATE_POSITIONAL = (
    "score_test",
    "score_validation",
    "labels_training",
    "labels_test",
    "labels_validation",
)


class FakeJobServer:
    """The job server in memory: jobs, datasets, the updates it was sent.

    ``fail_next(error, ..., call=None)`` makes the next calls (of that name,
    or of any) raise those errors, one each (a server away is a
    ``TransientError``); ``calls`` lists every call's name in order.
    """

    def __init__(self) -> None:
        self.datasets: dict[int, dict[str, Any]] = {}
        self.points: dict[int, list[dict[str, Any]]] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.pending: deque[int] = deque()
        self.updates: dict[int, dict[str, Any]] = {}
        self.pictures: dict[int, list[str]] = {}
        self.calls: list[str] = []
        self._failures: dict[str | None, deque[APIError]] = {}

    def add_dataset(self, info: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> int:
        """Store a dataset; its id."""
        dataset_id = len(self.datasets) + 1
        self.datasets[dataset_id] = dict(info)
        self.points[dataset_id] = [dict(point) for point in points]
        return dataset_id

    def add_job(self, algorithm: str, dataset: object, **details: Any) -> int:
        """Queue a pending job (``params``, ``time_limit``, ``seed`` as the protocol has them)."""
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = {"id": job_id, "algorithm": algorithm, "dataset": dataset, **details}
        self.jobs[job_id].setdefault("params", {})
        self.pending.append(job_id)
        return job_id

    def fail_next(self, *errors: APIError, call: str | None = None) -> None:
        """The next calls named ``call`` (None: of any name) raise these errors, one each."""
        self._failures.setdefault(call, deque()).extend(errors)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        for key in (name, None):
            if self._failures.get(key):
                raise self._failures[key].popleft()

    def request_job(self) -> int | None:
        """The oldest pending job's id, now running; None when none is pending."""
        self._call("request_job")
        return self.pending.popleft() if self.pending else None

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """As :meth:`request_job`, answered at once like a v1 server: no hold, no details."""
        self._call("claim_job")
        return Claim(self.pending.popleft() if self.pending else None, None)

    def get_job_details(self, job_id: int) -> dict[str, Any]:
        """The job as it was added."""
        self._call("get_job_details")
        if job_id not in self.jobs:
            raise NotFoundError(f"GET /jobs/{job_id}/ answered 404: no such job", 404)
        return dict(self.jobs[job_id])

    def get_datasets(self) -> dict[int, dict[str, Any]]:
        """Every dataset's info."""
        self._call("get_datasets")
        return {key: dict(info) for key, info in self.datasets.items()}

    def get_points(self, dataset_id: int) -> list[dict[str, Any]]:
        """A dataset's points, labels included."""
        self._call("get_points")
        if dataset_id not in self.points:
            raise NotFoundError(f"GET /datasets/{dataset_id}/points/ answered 404", 404)
        return [dict(point) for point in self.points[dataset_id]]

    def update_job_details(
        self,
        job_id: int,
        *scores_and_labels: Any,
        pictures: Iterable[Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Keep the update as the wire carries it (no None); a second one is a duplicate."""
        self._call("update_job_details")
        if job_id not in self.jobs:
            raise NotFoundError(f"POST /jobs/{job_id}/update/ answered 404: no such job", 404)
        sent = {**dict(zip(_UPDATE_POSITIONAL, scores_and_labels, strict=False)), **fields}
        update = {name: value for name, value in sent.items() if value is not None}
        if job_id in self.updates:
            return {"success": True, "duplicate": True}
        self.updates[job_id] = update
        self.pictures[job_id] = [_picture_name(picture) for picture in pictures or ()]
        return {"success": True}

    def close(self) -> None:
        """Nothing to close."""


@dataclass(frozen=True)
class RunCall:
    """One call of `FakeRunner.run`: the job and the limits it was given."""

    job: JobSpec
    time_limit: float
    memory_limit: int | None


def failed(kind: OutcomeKind, message: str) -> JobOutcome:
    """The outcome of a job that ended without a result."""
    return JobOutcome(kind, message, None, JobTimings(None, None, 0.0), exitcode=None)


class FakeRunner:
    """A `Runner` in this process: the real algorithm, or ``script(job)`` when given.

    No child process and no limits: a test that needs a timeout or a crash
    scripts that outcome. A set ``cancel`` is honoured before the job starts
    (outcome ``cancelled``, as the real runner reports it).
    """

    def __init__(
        self, script: Callable[[JobSpec], JobOutcome] | None = None, *, pictures: bool = False
    ) -> None:
        self.script = script
        self.pictures = pictures
        self.runs: list[RunCall] = []

    def run(
        self,
        job: JobSpec,
        *,
        time_limit: float,
        memory_limit: int | None = None,
        cancel: Callable[[], bool] | None = None,
        drawing: Callable[[], None] | None = None,
    ) -> JobOutcome:
        """Run `job` here and say how it ended; never raises for the job's sake.

        `drawing` is called once a job has succeeded (a job process says
        `Drawing` before its pictures: here they are drawn already).
        """
        self.runs.append(RunCall(job, time_limit, memory_limit))
        if cancel is not None and cancel():
            return failed("cancelled", "worker shut down")
        if self.script is not None:
            outcome = self.script(job)
            if drawing is not None and outcome.ok:
                drawing()
            return outcome
        started = time.monotonic()
        try:
            result = run_algorithm(
                job.algorithm,
                job.params,
                job.dataset,
                seed=job.seed,
                pictures=self.pictures and job.pictures,
            )
        except AlgorithmError as exc:
            return failed("error", str(exc))
        if drawing is not None:
            drawing()
        seconds = time.monotonic() - started
        return JobOutcome("success", "", result, JobTimings(0.0, seconds, seconds), exitcode=0)


@dataclass
class RecordingReporter:
    """A `Reporter` that keeps every event, in order (as ``structlog.testing`` keeps logs)."""

    events: list[Event] = field(default_factory=list)

    def report(self, event: Event) -> None:
        """Keep it."""
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [event for event in self.events if isinstance(event, kind)]


@dataclass(frozen=True)
class Answer:
    """What a `MockAdapter` handler answers: status, body, headers and cookies to set."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)


def json_answer(data: Any, status: int = 200, **cookies: str) -> Answer:
    """An answer with ``data`` as its JSON body (and ``cookies`` set)."""
    headers = {"Content-Type": "application/json"}
    return Answer(status, json.dumps(data).encode(), headers, cookies)


class MockAdapter(BaseAdapter):
    """A ``requests`` adapter that answers every request from ``handler``: no sockets.

    Mount it with ``API(..., adapter=MockAdapter(handler))``; everything above
    the adapter (cookies, CSRF, retries, error translation) runs for real.
    ``requests`` lists what was sent, in order.
    """

    def __init__(self, handler: Callable[[requests.PreparedRequest], Answer]) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(  # type: ignore[override]  # requests' signature, with its many defaults
        self, request: requests.PreparedRequest, **_options: Any
    ) -> requests.Response:
        """Answer one request."""
        self.requests.append(request)
        return _response(request, self.handler(request))

    def close(self) -> None:
        """Nothing to close."""


class _Original:
    """The ``http.client`` response that ``requests`` reads the cookies from."""

    def __init__(self, message: http.client.HTTPMessage) -> None:
        self.msg = message

    def close(self) -> None:
        """Nothing to close."""

    def isclosed(self) -> bool:
        """Always: the body is in memory."""
        return True


def _response(request: requests.PreparedRequest, answer: Answer) -> requests.Response:
    headers = HTTPHeaderDict(dict(answer.headers))
    message = http.client.HTTPMessage()
    for name, value in answer.headers.items():
        message[name] = value
    for name, value in answer.cookies.items():
        headers.add("Set-Cookie", f"{name}={value}; Path=/")
        message["Set-Cookie"] = f"{name}={value}; Path=/"
    raw = HTTPResponse(
        body=io.BytesIO(answer.body),
        headers=headers,
        status=answer.status,
        reason=http.client.responses.get(answer.status, ""),
        preload_content=False,
        decode_content=False,
        original_response=_Original(message),  # type: ignore[arg-type]
    )
    return HTTPAdapter().build_response(request, raw)


def _picture_name(picture: Any) -> str:
    """The file name of a picture sent as a path or as a ``(name, png bytes)`` pair."""
    return str(picture[0]) if isinstance(picture, tuple) else Path(str(picture)).name
