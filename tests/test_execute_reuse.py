"""worker.execute: a job process serves several jobs, each from the same state, and is replaced."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_execute import INFO, PLUGINS, iris_points, read_record, spec

from algorithms.dataset import Dataset
from worker.execute import JobOutcome, JobRunner, JobSpec

JOBS_PER_PROCESS = 4
MEMORY_GROWTH = 100 * 1024 * 1024
GIB = 1024**3


@pytest.fixture(scope="module")
def iris() -> Dataset:
    """Iris, built as the worker builds it."""
    return Dataset.from_points(INFO, iris_points())


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test plugins record what they saw."""
    return tmp_path_factory.mktemp("reuse-state")


@pytest.fixture(scope="module")
def runner(plugin_dir: Path) -> Iterator[JobRunner]:
    """A started JobRunner with the test plugins, 4 jobs per process and a 100 MiB growth bound."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "PYTHONPATH", os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
        )
        patch.syspath_prepend(str(PLUGINS))
        patch.setenv("MLWORKER_TEST_PLUGIN_DIR", str(plugin_dir))
        with JobRunner(
            jobs_per_process=JOBS_PER_PROCESS, memory_growth=MEMORY_GROWTH
        ) as job_runner:
            yield job_runner


def run(runner: JobRunner, job: JobSpec, **limits: Any) -> JobOutcome:
    """Run `job` with a generous time limit and a 2 GiB memory limit; it must succeed."""
    limits.setdefault("time_limit", 120)
    limits.setdefault("memory_limit", 2 * GIB)
    outcome = runner.run(job, **limits)
    assert outcome.kind == "success", outcome.message
    return outcome


def recorded(runner: JobRunner, iris: Dataset, plugin_dir: Path, name: str) -> dict[str, Any]:
    """Run plugin ``test_<name>`` and return what it recorded (its pid, the state it saw)."""
    (plugin_dir / f"{name}.json").unlink(missing_ok=True)
    run(runner, spec(iris, f"test_{name}"))
    return read_record(plugin_dir, name)


def pid_of_next_job(runner: JobRunner, iris: Dataset, plugin_dir: Path) -> int:
    """The pid of the process that runs the next job."""
    pid: int = recorded(runner, iris, plugin_dir, "state")["pid"]
    return pid


def fresh_process(runner: JobRunner, iris: Dataset) -> None:
    """Make the next job the first of a fresh process (a crash drops the current one)."""
    assert runner.run(spec(iris, "test_aborts"), time_limit=120).kind == "crashed"


def test_a_plugin_that_changes_global_state_does_not_change_the_next_job(
    runner: JobRunner, iris: Dataset, plugin_dir: Path
) -> None:
    """After a job that changes all global state, the same process's next job sees none of it."""
    fresh_process(runner, iris)
    before = recorded(runner, iris, plugin_dir, "state")
    meddles = recorded(runner, iris, plugin_dir, "meddles")
    after = recorded(runner, iris, plugin_dir, "state")
    assert before["pid"] == meddles["pid"] == after["pid"], "one process served all three"
    unchanged = [key for key in before["state"] if meddles["state"][key] == before["state"][key]]
    assert unchanged == [], "the plugin changes every piece of state"
    assert after["state"] == before["state"]


def test_builtin_results_are_bit_for_bit_the_same_after_a_meddling_job(
    runner: JobRunner, iris: Dataset, plugin_dir: Path
) -> None:
    """A built-in job's labels, scores and pictures are the same before and after a meddling job."""
    fresh_process(runner, iris)
    job = spec(iris, "random_forest", params={"n_estimators": 5}, pictures=True)
    first = run(runner, job).result
    recorded(runner, iris, plugin_dir, "meddles")
    second = run(runner, job).result
    assert first is not None
    assert second is not None
    assert second.labels == first.labels
    assert (second.score_test, second.score_validation) == (
        first.score_test,
        first.score_validation,
    )
    assert [p.png for p in second.pictures] == [p.png for p in first.pictures]


def test_a_process_serves_jobs_per_process_jobs_then_a_fresh_one_takes_over(
    runner: JobRunner, iris: Dataset, plugin_dir: Path
) -> None:
    """The first JOBS_PER_PROCESS jobs after a fresh start share a process; the next has another."""
    fresh_process(runner, iris)
    pids = [pid_of_next_job(runner, iris, plugin_dir) for _ in range(JOBS_PER_PROCESS + 1)]
    assert len(set(pids[:JOBS_PER_PROCESS])) == 1
    assert pids[JOBS_PER_PROCESS] != pids[0]


@pytest.mark.parametrize(
    ("algorithm", "params", "limits", "kind"),
    [
        pytest.param("test_raises", {}, {}, "exception", id="exception"),
        pytest.param("test_sleeps", {}, {"time_limit": 1}, "timeout", id="timeout"),
        pytest.param("test_allocates", {}, {"memory_limit": GIB}, "memory", id="memory"),
        pytest.param("test_leaves_thread", {}, {}, "success", id="leaves-a-thread"),
        pytest.param("test_hoards", {"mib": 150}, {}, "success", id="memory-grew"),
    ],
)
def test_a_process_is_not_reused_after_an_unclean_job(
    runner: JobRunner,
    iris: Dataset,
    plugin_dir: Path,
    algorithm: str,
    params: dict[str, Any],
    limits: dict[str, Any],
    kind: str,
) -> None:
    """A job that fails, leaves a thread or grows memory past the bound takes its process along."""
    fresh_process(runner, iris)
    used = pid_of_next_job(runner, iris, plugin_dir)
    limits = {"time_limit": 120, "memory_limit": 2 * GIB, **limits}
    assert runner.run(spec(iris, algorithm, params=params), **limits).kind == kind
    assert pid_of_next_job(runner, iris, plugin_dir) != used


def test_a_small_job_keeps_its_process(runner: JobRunner, iris: Dataset, plugin_dir: Path) -> None:
    """A job that keeps less memory than the growth bound leaves its process in service."""
    fresh_process(runner, iris)
    used = pid_of_next_job(runner, iris, plugin_dir)
    run(runner, spec(iris, "test_hoards", params={"mib": 10}))
    assert pid_of_next_job(runner, iris, plugin_dir) == used


def test_another_memory_limit_gets_a_fresh_process(
    runner: JobRunner, iris: Dataset, plugin_dir: Path
) -> None:
    """A used process keeps its address-space limit: a job with another limit gets a fresh one."""
    fresh_process(runner, iris)
    used = pid_of_next_job(runner, iris, plugin_dir)
    (plugin_dir / "state.json").unlink(missing_ok=True)
    run(runner, spec(iris, "test_state"), memory_limit=3 * GIB)
    assert read_record(plugin_dir, "state")["pid"] != used


def test_jobs_per_process_must_be_positive() -> None:
    """jobs_per_process below 1 is refused, naming the setting."""
    with pytest.raises(ValueError, match="jobs_per_process must be 1 or more"):
        JobRunner(jobs_per_process=0)
