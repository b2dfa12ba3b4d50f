"""The delivery thread's policies, in-process: a fake server, the real spool and thread.

What a result in the spool becomes when the server takes it, is away, has
forgotten the job, or refuses it; the end-to-end tests (test_daemon_faults,
test_daemon_restart) prove the same with a real server and worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.backoff import Backoff
from worker.delivery import Deliverer
from worker.errors import InvalidInputError, TransientError
from worker.outbox import Outbox
from worker.reporting import ServerError
from worker.result import Result
from worker.testing import FakeJobServer, RecordingReporter

DRAIN_SECONDS = 10.0
AWAY = TransientError("POST /jobs/1/update/ failed: ConnectionError", None)


def spool_failure(outbox: Outbox, job_id: int, message: str) -> None:
    """Put a failed job's result in the spool, as the loop does."""
    outbox.put(Result.failure(job_id, message))


@pytest.fixture
def server() -> FakeJobServer:
    """A fake server that knows jobs 1 and 2."""
    fake = FakeJobServer()
    fake.add_job("knn", 1)
    fake.add_job("knn", 1)
    return fake


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    """A real spool in the test's directory."""
    return Outbox(tmp_path / "spool")


@pytest.fixture
def start(
    outbox: Outbox, server: FakeJobServer
) -> Iterator[Callable[..., tuple[Deliverer, RecordingReporter]]]:
    """Starts delivery threads on the spool (fast backoff); stops them at the end."""
    started: list[Deliverer] = []

    def begin(
        connect: Callable[[], FakeJobServer] = lambda: server,
    ) -> tuple[Deliverer, RecordingReporter]:
        reporter = RecordingReporter()
        deliverer = Deliverer(
            outbox,
            lambda _cut: connect(),
            Backoff(0.01, 0.05),
            idle_check=0.05,
            reporter=reporter,
        )
        deliverer.start()
        started.append(deliverer)
        return deliverer, reporter

    yield begin
    for deliverer in started:
        deliverer.stop(grace=DRAIN_SECONDS)


def test_what_an_earlier_run_left_is_delivered_at_start(
    outbox: Outbox, server: FakeJobServer, start: Callable[..., tuple[Deliverer, RecordingReporter]]
) -> None:
    """Results spooled before the thread starts reach the server; the spool ends empty."""
    spool_failure(outbox, 1, "first")
    spool_failure(outbox, 2, "second")
    deliverer, _ = start()
    assert deliverer.wait_drained(DRAIN_SECONDS)
    assert {job: update["message"] for job, update in server.updates.items()} == {
        1: "first",
        2: "second",
    }
    assert outbox.count() == 0


def test_a_server_away_keeps_the_result_until_it_is_back(
    outbox: Outbox, server: FakeJobServer, start: Callable[..., tuple[Deliverer, RecordingReporter]]
) -> None:
    """Two failed sends: each is reported, the result waits in the spool, then is delivered once."""
    server.fail_next(AWAY, AWAY, call="update_job_details")
    spool_failure(outbox, 1, "kept")
    deliverer, reporter = start()
    assert deliverer.wait_drained(DRAIN_SECONDS)
    assert server.calls.count("update_job_details") == 3
    assert len(reporter.of(ServerError)) == 2
    assert server.updates[1]["message"] == "kept"


def test_no_session_yet_is_retried_like_a_server_away(
    outbox: Outbox, server: FakeJobServer, start: Callable[..., tuple[Deliverer, RecordingReporter]]
) -> None:
    """The first connects fail: the thread lives on, reports them, and delivers once connected."""
    attempts: list[int] = []

    def connect() -> FakeJobServer:
        attempts.append(1)
        if len(attempts) < 3:
            raise AWAY
        return server

    spool_failure(outbox, 1, "late")
    deliverer, reporter = start(connect)
    assert deliverer.wait_drained(DRAIN_SECONDS)
    assert len(attempts) == 3
    assert len(reporter.of(ServerError)) == 2
    assert 1 in server.updates


def test_a_job_the_server_does_not_know_is_dropped(
    outbox: Outbox, server: FakeJobServer, start: Callable[..., tuple[Deliverer, RecordingReporter]]
) -> None:
    """404 for the update: the server will never take it, so it leaves the spool unsent."""
    spool_failure(outbox, 99, "orphan")
    deliverer, _ = start()
    assert deliverer.wait_drained(DRAIN_SECONDS)
    assert server.updates == {}
    assert not list(outbox.corrupt.iterdir())


def test_a_refused_result_is_quarantined_with_the_reason(
    outbox: Outbox, server: FakeJobServer, start: Callable[..., tuple[Deliverer, RecordingReporter]]
) -> None:
    """400 for the update: our result is wrong; it moves to corrupt/ with the server's sentence."""
    refusal = InvalidInputError("POST /jobs/1/update/ answered 400: labels_test: wrong length", 400)
    server.fail_next(refusal, call="update_job_details")
    spool_failure(outbox, 1, "refused")
    deliverer, _ = start()
    assert deliverer.wait_drained(DRAIN_SECONDS)
    assert server.updates == {}
    reasons = [path.read_text() for path in outbox.corrupt.rglob("*") if path.is_file()]
    assert any("wrong length" in text for text in reasons), reasons
