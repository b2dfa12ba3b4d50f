"""worker.jobforkserver: a forked process runs jobs from a forkserver it inherited, never stops it,
and starts its own when the inherited one was killed. Real forks, real processes."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_execute import INFO, iris_points, spec

from algorithms.dataset import Dataset
from worker.execute import JobRunner
from worker.jobforkserver import JobForkServer


@pytest.fixture(scope="module")
def iris() -> Dataset:
    """Iris, built as the worker builds it."""
    return Dataset.from_points(INFO, iris_points())


@pytest.fixture
def server() -> Iterator[JobForkServer]:
    """A launched forkserver that this process owns, stopped at the end."""
    forkserver = JobForkServer()
    forkserver.ensure_running()
    yield forkserver
    forkserver.stop()


def in_forked_child(work: Callable[[], bool]) -> int:
    """Run ``work`` in a forked child, as the supervisor runs a worker; its exit status.

    0 when ``work`` returned True, 1 when it returned False, 2 when it raised.
    """
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = 0 if work() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def runs_a_job(forkserver: JobForkServer, dataset: Dataset) -> Callable[[], bool]:
    """Whether a runner on ``forkserver`` runs a job."""

    def work() -> bool:
        with JobRunner(forkserver=forkserver) as runner:
            return runner.run(spec(dataset, "knn"), time_limit=120).ok

    return work


def alive(pid: int) -> bool:
    """Whether our child ``pid`` still runs (it is not reaped here)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def test_a_forked_process_runs_jobs_from_the_inherited_forkserver_and_leaves_it_running(
    server: JobForkServer, iris: Dataset
) -> None:
    """Two children in turn, as two workers: each runs a job; the forkserver outlives both."""
    assert in_forked_child(runs_a_job(server, iris)) == 0
    assert in_forked_child(runs_a_job(server, iris)) == 0
    pid = server._forkserver_pid
    assert pid is not None
    assert alive(pid)
    assert runs_a_job(server, iris)()  # and its owner still uses it


def test_a_killed_inherited_forkserver_is_replaced_by_one_of_the_childs_own(
    server: JobForkServer, iris: Dataset
) -> None:
    """The child finds the inherited forkserver dead, starts its own, and stops that at the end."""
    pid = server._forkserver_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, and left for the owner to reap

    def work() -> bool:
        with JobRunner(forkserver=server) as runner:
            ran = runner.run(spec(iris, "knn"), time_limit=120).ok
            own, owned = server._forkserver_pid, not server.inherited
        stopped = server._forkserver_pid is None and not os.path.exists(f"/proc/{own}")
        return ran and own not in (None, pid) and owned and stopped

    assert in_forked_child(work) == 0


def test_an_inherited_forkserver_dying_as_it_is_asked_is_replaced_by_the_childs_own(
    server: JobForkServer, iris: Dataset, tmp_path: Path
) -> None:
    """It took the request and never forked (as a SIGKILLed one does, between the kill and the
    closing of its socket): the child starts its own forkserver and its job runs."""

    def work() -> bool:
        dying = socket.socket(socket.AF_UNIX)
        dying.bind(str(tmp_path / "dying"))
        dying.listen()

        def take_the_request_and_die() -> None:
            connection, _ = dying.accept()
            _, fds, _, _ = socket.recv_fds(connection, 1, 16)
            for fd in fds:
                os.close(fd)
            connection.close()

        threading.Thread(target=take_the_request_and_die, daemon=True).start()
        server._forkserver_address = str(tmp_path / "dying")  # what the child inherited
        with JobRunner(forkserver=server) as runner:
            ran = runner.run(spec(iris, "knn"), time_limit=120).ok
            owned = not server.inherited and server._forkserver_pid not in (None, shared)
        return ran and owned

    shared = server._forkserver_pid
    assert in_forked_child(work) == 0
    assert shared is not None
    assert alive(shared)  # the child never touched the real one
