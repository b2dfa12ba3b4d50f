"""worker.execute: jobs in real child processes, with real limits, signals and plugins."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris

from algorithms.dataset import Dataset
from algorithms.run import run_algorithm
from worker.execute import JobOutcome, JobRunner, JobSpec
from worker.sdnotify import NOTIFY_ENV_VARS

PLUGINS = Path(__file__).parent / "plugins"
GIB = 1024**3
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SET_CYCLE = ("training", "training", "training", "test", "validation")
INFO = {
    "name": "iris",
    "description": "scikit-learn's iris flowers",
    "task": "classification",
    "features": FEATURES,
    "target": "label",
    "version": "1",
}
_job_ids = itertools.count(1)


def iris_points() -> list[dict[str, Any]]:
    """Iris as the protocol's point dicts, every fifth point test, every fifth validation."""
    iris = load_iris()
    return [
        {
            "id": i + 1,
            **dict(zip(FEATURES, map(float, row), strict=True)),
            "label": int(t),
            "set": s,
        }
        for i, (row, t, s) in enumerate(
            zip(iris.data, iris.target, itertools.cycle(SET_CYCLE), strict=False)
        )
    ]


@pytest.fixture(scope="module")
def iris() -> Dataset:
    """Iris, built as the worker builds a dataset before handing it to a job process."""
    return Dataset.from_points(INFO, iris_points())


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test plugins record what they saw (MLWORKER_TEST_PLUGIN_DIR)."""
    return tmp_path_factory.mktemp("plugin-state")


@pytest.fixture(scope="module")
def runner(plugin_dir: Path) -> Iterator[JobRunner]:
    """A started JobRunner whose job processes see the test plugins.

    The variables are set before the forkserver starts: it inherits them. Job
    processes also get the worker's sys.path (multiprocessing sends it), hence
    the prepend. The worker's own systemd and thread settings must not leak.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "PYTHONPATH", os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
        )
        patch.syspath_prepend(str(PLUGINS))
        patch.setenv("MLWORKER_TEST_PLUGIN_DIR", str(plugin_dir))
        patch.setenv("NOTIFY_SOCKET", "/run/mlworker-test/notify")
        patch.setenv("WATCHDOG_USEC", "30000000")
        patch.setenv("WATCHDOG_PID", str(os.getpid()))
        patch.setenv("MLWORKER_PASSWORD", "secret-of-the-worker")
        patch.setenv("MLWORKER_PASSWORD_FILE", "/run/credentials/mlworker/password")
        patch.setenv("OMP_NUM_THREADS", "7")
        with JobRunner() as job_runner:
            yield job_runner


def spec(dataset: Dataset, algorithm: str, **fields: Any) -> JobSpec:
    """A job on `dataset`; `fields` override the defaults."""
    values: dict[str, Any] = {
        "params": {},
        "dataset": dataset,
        "seed": 7,
        "pictures": False,
    }
    values.update(fields)
    return JobSpec(job_id=next(_job_ids), algorithm=algorithm, **values)


def run(runner: JobRunner, job: JobSpec, **limits: Any) -> JobOutcome:
    limits.setdefault("time_limit", 120)
    return runner.run(job, **limits)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.05)


def live_processes_in_group(pgid: int) -> list[int]:
    """Pids of the processes in group `pgid` that are not zombies, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def read_record(plugin_dir: Path, name: str) -> dict[str, Any]:
    path = plugin_dir / f"{name}.json"
    wait_until(path.exists, f"the plugin wrote {path.name}")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def assert_still_runs_jobs(runner: JobRunner, iris: Dataset) -> None:
    outcome = run(runner, spec(iris, "test_ok"))
    assert outcome.kind == "success", outcome.message


def test_builtin_job_gives_the_labels_of_a_direct_run(runner: JobRunner, iris: Dataset) -> None:
    """A built-in job run in a child process gives what run_algorithm gives in this one."""
    outcome = run(runner, spec(iris, "knn", params={"n_neighbors": 3}, pictures=True))
    direct = run_algorithm("knn", {"n_neighbors": 3}, iris, seed=7, pictures=False)
    assert outcome.kind == "success", outcome.message
    assert outcome.ok
    assert outcome.message == ""
    assert outcome.result is not None
    assert outcome.result.labels == direct.labels
    assert outcome.result.score_test == direct.score_test
    assert outcome.result.pictures, "pictures cross the pipe"
    assert all(p.png.startswith(b"\x89PNG") for p in outcome.result.pictures)
    timings = outcome.timings
    assert timings.start is not None
    assert timings.run is not None
    assert timings.total >= timings.run > 0


FAILURES = [
    pytest.param("test_raises", {}, "exception", "ValueError: boom from plugin", id="raises"),
    pytest.param("no_such_algorithm", {}, "error", "'no_such_algorithm'", id="error"),
    pytest.param(
        "test_aborts",
        {"memory_limit": GIB},
        "crashed",
        "the algorithm crashed (signal SIGABRT)",
        id="aborts",
    ),
    pytest.param(
        "test_exits",
        {},
        "crashed",
        "the algorithm's process ended unexpectedly (exit status 3)",
        id="exits",
    ),
    pytest.param(
        "test_killed",
        {},
        "memory",
        "the algorithm was killed by the system (signal SIGKILL), most likely because",
        id="sigkill",
    ),
    pytest.param(
        "test_sleeps",
        {"time_limit": 2},
        "timeout",
        "the job took longer than its time limit of 2 seconds and was stopped",
        id="sleeps",
    ),
    pytest.param(
        "test_allocates",
        {"memory_limit": GIB},
        "memory",
        "the algorithm exceeded the memory limit of 1024 MiB and was stopped",
        id="allocates",
    ),
    pytest.param(
        "test_crashes_near_limit",
        {"memory_limit": GIB},
        "memory",
        "the algorithm exceeded the memory limit of 1024 MiB and was stopped",
        id="segfault-near-limit",
    ),
]


def test_drawing_is_said_once_the_scores_are_in_and_only_before_pictures(
    runner: JobRunner, iris: Dataset
) -> None:
    """``drawing`` is called once, mid-job, for a job that draws; never for one that does not."""
    called: list[float] = []
    outcome = run(runner, spec(iris, "knn", pictures=True), drawing=lambda: called.append(1))
    assert outcome.ok, outcome.message
    assert outcome.result is not None
    assert len(outcome.result.pictures) == 2
    assert called == [1]
    outcome = run(runner, spec(iris, "knn"), drawing=lambda: called.append(2))
    assert outcome.ok, outcome.message
    assert called == [1]


@pytest.mark.parametrize(("algorithm", "limits", "kind", "message"), FAILURES)
def test_failure_is_reported_and_the_next_job_runs(
    runner: JobRunner,
    iris: Dataset,
    algorithm: str,
    limits: dict[str, Any],
    kind: str,
    message: str,
) -> None:
    """Each way a job can fail gives its own kind and message, and the runner goes on."""
    outcome = run(runner, spec(iris, algorithm), **limits)
    assert (outcome.kind, outcome.result) == (kind, None)
    assert message in outcome.message
    assert "Traceback" not in outcome.message
    assert_still_runs_jobs(runner, iris)


def test_a_job_that_cannot_be_handed_over_fails_and_the_runner_goes_on(
    runner: JobRunner, iris: Dataset
) -> None:
    """Params too deep to pickle fail the job as ``invalid``; the spare still runs the next."""
    nested: Any = 1
    for _ in range(100_000):
        nested = [nested]
    outcome = run(runner, spec(iris, "knn", params={"n_neighbors": nested}))
    assert (outcome.kind, outcome.result) == ("invalid", None)
    assert outcome.message.startswith("the job cannot be handed to a job process: RecursionError")
    assert run(runner, spec(iris, "knn", params={"n_neighbors": 3})).ok


def test_timeout_kills_the_whole_process_group(
    runner: JobRunner, iris: Dataset, plugin_dir: Path
) -> None:
    """On expiry the job process and the grandchild it started are both killed."""
    (plugin_dir / "forks.json").unlink(missing_ok=True)
    outcome = run(runner, spec(iris, "test_forks"), time_limit=3)
    assert outcome.kind == "timeout"
    assert outcome.exitcode == -signal.SIGKILL
    record = read_record(plugin_dir, "forks")
    assert record["pgid"] == record["pid"], "the job process leads its own group"
    wait_until(lambda: not live_processes_in_group(record["pgid"]), "the job's group is gone")
    assert is_gone(record["grandchild"])


def test_cancel_stops_a_running_job(runner: JobRunner, iris: Dataset, plugin_dir: Path) -> None:
    """A cancel check that turns true during a job stops it, grandchildren included."""
    forks = plugin_dir / "forks.json"
    forks.unlink(missing_ok=True)
    outcome = run(runner, spec(iris, "test_forks"), time_limit=600, cancel=forks.exists)
    assert (outcome.kind, outcome.message) == ("cancelled", "worker shut down")
    assert outcome.timings.total < 300, "cancelled long before the time limit"
    record = read_record(plugin_dir, "forks")
    wait_until(lambda: is_gone(record["grandchild"]), "the grandchild is gone")
    assert_still_runs_jobs(runner, iris)


def test_cancel_event_set_before_the_job(runner: JobRunner, iris: Dataset) -> None:
    """A threading.Event works as the cancel flag."""
    cancel = threading.Event()
    cancel.set()
    outcome = run(runner, spec(iris, "test_sleeps"), cancel=cancel)
    assert outcome.kind == "cancelled"


def test_job_environment(runner: JobRunner, iris: Dataset, plugin_dir: Path) -> None:
    """Jobs get one BLAS/OpenMP thread, the Agg backend, no systemd variables, no password."""
    (plugin_dir / "env.json").unlink(missing_ok=True)
    outcome = run(runner, spec(iris, "test_env"))
    assert outcome.kind == "success", outcome.message
    environ = read_record(plugin_dir, "env")["environ"]
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert environ[name] == "1", name
    assert environ["MPLBACKEND"] == "Agg"
    for name in (*NOTIFY_ENV_VARS, "MLWORKER_PASSWORD", "MLWORKER_PASSWORD_FILE"):
        assert name not in environ, name
    # ... while the worker keeps its own
    assert os.environ["NOTIFY_SOCKET"] == "/run/mlworker-test/notify"
    assert os.environ["OMP_NUM_THREADS"] == "7"


def test_bad_arguments_are_refused(runner: JobRunner, iris: Dataset) -> None:
    """Limits that make no sense are refused, naming what is wrong."""
    with pytest.raises(ValueError, match="time_limit must be a positive number"):
        runner.run(spec(iris, "knn"), time_limit=0)
    with pytest.raises(ValueError, match="memory_limit must be a positive number"):
        runner.run(spec(iris, "knn"), time_limit=10, memory_limit=-1)


WORKER_SCRIPT = """
import json, sys
from algorithms.dataset import Dataset
from worker.execute import JobRunner, JobSpec

if __name__ == "__main__":
    info, points = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    with JobRunner() as runner:
        dataset = Dataset.from_points(info, points)
        runner.run(JobSpec(1, "test_forks", {}, dataset), time_limit=600)
"""


def test_job_dies_with_a_killed_worker(tmp_path: Path) -> None:
    """When the worker is killed with SIGKILL, its job's whole process group dies too."""
    env = dict(os.environ, PYTHONPATH=str(PLUGINS), MLWORKER_TEST_PLUGIN_DIR=str(tmp_path))
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, json.dumps(INFO), json.dumps(iris_points())],
        env=env,
    )
    try:
        forks = tmp_path / "forks.json"
        wait_until(lambda: forks.exists() or worker.poll() is not None, "the job started", 120)
        assert worker.poll() is None, "the worker ended before its job started"
        record = json.loads(forks.read_text())
        worker.kill()
        worker.wait()
        wait_until(lambda: not live_processes_in_group(record["pgid"]), "the job group is gone")
        wait_until(lambda: is_gone(record["grandchild"]), "the grandchild is gone")
    finally:
        worker.kill()
        worker.wait()


LIGHT_WORKER_SCRIPT = """
import json, sys
from algorithms.dataset import Dataset
from worker import cli, commands, daemon, supervisor
from worker.execute import JobRunner, JobSpec

if __name__ == "__main__":
    info, points = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    job = JobSpec(1, "knn", {}, Dataset.from_points(info, points))
    with JobRunner() as runner:
        outcome = runner.run(job, time_limit=600)
    loaded = {name.split(".")[0] for name in sys.modules}
    heavy = sorted(loaded & {"sklearn", "scipy", "matplotlib"})
    pictures = len(outcome.result.pictures)
    print(json.dumps({"kind": outcome.kind, "pictures": pictures, "heavy": heavy}))
"""


def test_the_worker_process_never_imports_scikit_learn_or_matplotlib() -> None:
    """The supervisor's and worker's modules, and a job's result with pictures, leave them out."""
    done = subprocess.run(
        [sys.executable, "-c", LIGHT_WORKER_SCRIPT, json.dumps(INFO), json.dumps(iris_points())],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert json.loads(done.stdout) == {"kind": "success", "pictures": 2, "heavy": []}
