"""A hostile server and student against a real `mlworker run`: failed jobs with a sentence.

The job server here is `tests/fault_server.py`, scripted to hand out jobs whose
details and dataset infos hold every wrong type, params nested 500 deep, JSON
nested too deep to parse, numbers too long for Python and time limits such as
Infinity. Each job must end as a failed update whose message names what was
wrong and what is allowed; a good job after them must still be done; the
burst must end 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import WORKER_PASSWORD, WORKER_USER, start_worker
from fault_server import FaultServer, Reply

pytestmark = pytest.mark.slow

FEATURES = ["x", "y"]
SETS = ["training"] * 6 + ["test"] * 3 + ["validation"] * 3
POINTS = [
    {"id": i + 1, "x": float(i), "y": float(i % 3), "label": i % 2, "set": s}
    for i, s in enumerate(SETS)
]
GOOD_INFO = {"name": "toy", "task": "classification", "features": FEATURES, "target": "label"}


def deep(levels: int) -> Any:
    """A value nested ``levels`` lists deep, built without recursion."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def good(**changes: Any) -> dict[str, Any]:
    """Details of a job that would run, with ``changes``."""
    return {"id": 0, "algorithm": "knn", "dataset": 1, "params": {"n_neighbors": 1}} | changes


#: job id -> (the details the server sends, a fragment the failure message must hold)
CASES: dict[int, tuple[Reply, str]] = {
    101: (Reply(body=good(params={"n_neighbors": deep(500)})), "nested 501 levels deep"),
    102: (Reply(body=good(dataset=-1)), "dataset must be a dataset id (an integer >= 0), not -1"),
    103: (Reply(body=good(dataset="1")), "not '1'"),
    104: (Reply(body=good(dataset=None)), "not None"),
    105: (Reply(body=good(algorithm=7)), "must name an algorithm (a string), not 7"),
    106: (Reply(body=good(algorithm=["knn"])), "must name an algorithm (a string), not a JSON"),
    107: (Reply(body=good(params=[1, 2])), "params must be a JSON object"),
    108: (Reply(body=good(params="n_neighbors=1")), "params must be a JSON object"),
    109: (Reply(raw=b'{"algorithm": "knn", "dataset": 1, "time_limit": Infinity}'), "Infinity"),
    110: (Reply(raw=b'{"algorithm": "knn", "dataset": 1, "time_limit": NaN}'), "not NaN"),
    111: (Reply(body=good(time_limit=-5)), "time_limit must be a number of seconds"),
    112: (Reply(body=good(time_limit=1e12)), "at most 604800"),
    113: (Reply(body=good(time_limit="60")), "not '60'"),
    114: (Reply(raw=b'{"algorithm": "knn", "dataset": 1, "time_limit": 1e999}'), "Infinity"),
    115: (Reply(body=good(seed="7")), "seed must be an integer from 0 to 4294967295"),
    116: (Reply(body=good(seed=2**40)), "seed must be an integer"),
    117: (Reply(body=[1, 2, 3]), "answered a JSON list where a dict was expected"),
    118: (Reply(raw=b'"knn"'), "answered a JSON str where a dict was expected"),
    119: (Reply(raw=b"[" * 200_000 + b"]" * 200_000), "nested too deeply to read"),
    120: (
        Reply(raw=b'{"algorithm": "knn", "dataset": ' + b"9" * 5000 + b"}"),
        "not JSON it can read",
    ),
    121: (Reply(body=good(dataset=2)), "describes dataset 2 as a JSON array"),
    122: (Reply(body=good(dataset=3)), "describes dataset 3 as a JSON string"),
    123: (Reply(body=good(dataset=4)), "the features must be a list of feature names"),
    124: (Reply(body=good(dataset=5)), "the task must be a string"),
    125: (Reply(body=good(dataset=6)), "the version must be a string"),
    126: (Reply(body=good(dataset=7)), "has id None; every point needs an integer 'id'"),
    127: (Reply(body=good(dataset=99)), "dataset 99 does not exist on the server"),
    128: (Reply(body=good(dataset=8)), "nested too deeply to read"),
    129: (Reply(body=good(params={"n_neighbors": "x" * 70_000})), "at most 65536 are allowed"),
}
GOOD_JOB = 200
DATASETS = {
    "1": GOOD_INFO,
    "2": [1, 2],
    "3": "toy",
    "4": GOOD_INFO | {"features": "x"},
    "5": GOOD_INFO | {"task": {"kind": "classification"}},
    "6": GOOD_INFO | {"version": 3},
    "7": GOOD_INFO,
    "8": GOOD_INFO,
}


@pytest.fixture
def hostile() -> Iterator[FaultServer]:
    """The hostile server: the cases above, then the good job, then no more jobs."""
    with FaultServer(users={WORKER_USER: WORKER_PASSWORD}) as server:
        jobs = [*CASES, GOOD_JOB]
        server.fault("POST", "/jobs/request/", *(Reply(body={"job": job}) for job in jobs))
        server.answer("POST", "/jobs/request/", Reply(body={"job": None}))
        for job, (reply, _) in CASES.items():
            server.answer("GET", f"/jobs/{job}/", reply)
        server.answer("GET", f"/jobs/{GOOD_JOB}/", Reply(body=good(id=GOOD_JOB)))
        server.answer("GET", "/datasets/", Reply(body=DATASETS))
        for dataset in ("1", "4", "5", "6"):
            server.answer("GET", f"/datasets/{dataset}/points/", Reply(body=POINTS))
        server.answer("GET", "/datasets/7/points/", Reply(body=[1, 2, 3]))
        deep_points = b'[{"id": 1, "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]"
        server.answer("GET", "/datasets/8/points/", Reply(raw=deep_points))
        yield server


def updates(server: FaultServer) -> dict[int, dict[str, str]]:
    """The result each job got (``update/``, or ``finish/`` with pictures): its fields, by id."""
    found = {}
    for seen in server.calls("POST"):
        parts = seen.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "jobs" and parts[2] in ("update", "finish"):
            found[int(parts[1])] = seen.form
    return found


def test_every_hostile_job_fails_with_a_sentence_and_the_worker_goes_on(
    hostile: FaultServer, tmp_path: Path
) -> None:
    """Each wrong field, deep or huge value fails its job naming it; the good job still runs."""
    with start_worker(tmp_path, hostile.url) as worker:
        assert worker.wait() == 0, worker.tail()
        log = worker.output()
    got = updates(hostile)
    for job, (_, fragment) in CASES.items():
        assert job in got, f"job {job}: no update\n{worker.tail()}"
        assert got[job]["success"] == "false", (job, got[job])
        assert fragment in got[job]["message"], (job, got[job]["message"])
        assert "Traceback" not in got[job]["message"]
    assert got[GOOD_JOB]["success"] == "true", got[GOOD_JOB]
    assert json.loads(got[GOOD_JOB]["labels_test"]) is not None
    assert "Traceback" not in log, log[-3000:]
    assert not list((tmp_path / "spool" / "ready").iterdir())
