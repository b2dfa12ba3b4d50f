"""The polling loop's policies, in-process: fake server and runner, real spool, cache and delivery.

`worker.testing` stands in for the job server and the job processes; the
outbox, the dataset cache, the shutdown and the delivery thread are the real
ones. The end-to-end tests (test_daemon_*) prove the same wiring with a real
server and real job processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker.api import Claim
from worker.backoff import Backoff
from worker.cache import DatasetCache
from worker.delivery import Deliverer
from worker.errors import AuthenticationError, PermissionDeniedError, TransientError
from worker.execute import JobOutcome, JobSpec
from worker.lifecycle import Shutdown
from worker.loop import JobLoop
from worker.outbox import Outbox
from worker.reporting import Event, Heartbeat, JobFinished, ServerError, Status
from worker.testing import (
    FakeJobServer,
    FakeRunner,
    RecordingReporter,
    failed,
    settings_for,
    toy_points,
)

DRAIN_SECONDS = 10.0


@dataclass
class Rig:
    """A loop wired to fakes, and what it reports."""

    loop: JobLoop
    server: FakeJobServer
    outbox: Outbox
    reporter: RecordingReporter
    shutdown: Shutdown
    deliverer: Deliverer

    def delivered(self) -> dict[int, dict[str, Any]]:
        """Deliver what the loop spooled, with the real delivery thread; the server's updates."""
        deliverer = self.deliverer
        deliverer.start()
        try:
            assert deliverer.wait_drained(DRAIN_SECONDS), "the spool did not drain"
        finally:
            deliverer.stop(grace=DRAIN_SECONDS)
        return self.server.updates


@pytest.fixture
def server() -> FakeJobServer:
    """A fake server holding the toy dataset (id 1)."""
    fake = FakeJobServer()
    fake.add_dataset(*toy_points())
    return fake


def rig(tmp_path: Path, server: FakeJobServer, **flags: object) -> Rig:
    """A JobLoop on ``server`` and an in-process runner, spool and cache in ``tmp_path``."""
    settings = settings_for(tmp_path, **flags)
    outbox = Outbox(settings.spool_dir)
    reporter = RecordingReporter()
    shutdown = Shutdown()
    deliverer = Deliverer(outbox, lambda _cut: server, Backoff(0.01, 0.05), idle_check=0.05)
    loop = JobLoop(
        settings=settings,
        worker_id="test:1",
        api=server,
        runner=FakeRunner(),
        results=deliverer,
        cache=DatasetCache(settings.cache_dir),
        shutdown=shutdown,
        reporter=reporter,
    )
    return Rig(loop, server, outbox, reporter, shutdown, deliverer)


def test_a_burst_runs_every_pending_job_once_and_delivers_its_result(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """Two jobs: each runs once with the real algorithm; both results reach the server."""
    first = server.add_job("knn", 1, params={"n_neighbors": 3})
    second = server.add_job("naive_bayes", 1)
    run = rig(tmp_path, server)
    run.loop.run(burst=True)
    assert [call.job.job_id for call in run.loop.runner.runs] == [first, second]
    updates = run.delivered()
    assert set(updates) == {first, second}
    for update in updates.values():
        assert update["success"] is True
        assert len(update["labels_test"]) == 6
        assert 0 <= update["score_test"] <= 1
    assert [e.outcome for e in run.reporter.of(JobFinished)] == ["success", "success"]


def test_the_job_time_limit_wins_over_the_setting_and_a_bad_one_fails_the_job(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """A job's own time_limit reaches the runner, none means the setting; a bool, zero or text
    fails the job with a sentence (worker.details) instead of running under another limit."""
    jobs = [server.add_job("knn", 1, time_limit=limit) for limit in (7, None, True, 0, "60")]
    run = rig(tmp_path, server, time_limit=42)
    run.loop.run(burst=True)
    assert [call.time_limit for call in run.loop.runner.runs] == [7.0, 42.0]
    assert {call.memory_limit for call in run.loop.runner.runs} == {run.loop.settings.memory_limit}
    updates = run.delivered()
    for job in jobs[2:]:
        assert "time_limit must be a number of seconds" in updates[job]["message"]


@pytest.mark.parametrize(
    ("details", "sentence"),
    [
        ({"algorithm": "", "dataset": 1}, "must name an algorithm"),
        ({"algorithm": "knn", "dataset": 1, "params": [3]}, "must be a JSON object"),
        ({"algorithm": "knn", "dataset": "iris"}, "must be a dataset id"),
        ({"algorithm": "knn", "dataset": 99}, "dataset 99 does not exist"),
    ],
)
def test_a_job_that_cannot_run_fails_with_a_sentence_and_never_reaches_the_runner(
    tmp_path: Path, server: FakeJobServer, details: dict[str, Any], sentence: str
) -> None:
    """Bad job details: a failed result that says what is wrong; no job process is used."""
    job = server.add_job(**details)
    run = rig(tmp_path, server)
    run.loop.run(burst=True)
    assert run.loop.runner.runs == []
    update = run.delivered()[job]
    assert update["success"] is False
    assert sentence in update["message"]


def test_points_that_make_no_dataset_fail_the_job_with_the_reason(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """A dataset whose points lack a feature: the job fails naming it; the runner is not asked."""
    info, points = toy_points()
    del points[3]["y"]
    job = server.add_job("knn", server.add_dataset(info, points))
    run = rig(tmp_path, server)
    run.loop.run(burst=True)
    assert run.loop.runner.runs == []
    update = run.delivered()[job]
    assert update["success"] is False
    assert "'y'" in update["message"]


def test_an_algorithm_error_is_the_students_message(tmp_path: Path, server: FakeJobServer) -> None:
    """A param the algorithm refuses: the job fails with scikit-learn's sentence (an "error")."""
    job = server.add_job("knn", 1, params={"n_neighbors": 0})
    run = rig(tmp_path, server)
    run.loop.run(burst=True)
    update = run.delivered()[job]
    assert update["success"] is False
    assert "n_neighbors" in update["message"]
    assert [e.outcome for e in run.reporter.of(JobFinished)] == ["error"]


def test_a_server_away_is_probed_at_the_idle_maximum_and_the_loop_goes_on(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """Failed claims and an expired session: each reported and retried; the job still runs."""
    job = server.add_job("knn", 1)
    away = TransientError("POST /jobs/request/ failed: ConnectionError", None)
    server.fail_next(away, away, call="claim_job")
    expired = AuthenticationError("the session expired and the login was refused", 401)
    server.fail_next(expired, call="get_job_details")
    run = rig(tmp_path, server)
    run.loop.run(burst=True)
    assert len(run.reporter.of(ServerError)) == 3
    assert Status("server unreachable") in run.reporter.events
    assert run.delivered()[job]["success"] is True


def test_a_job_the_server_no_longer_knows_is_left_to_its_lease(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """Details answer 404: nothing runs, nothing is spooled, the next job is claimed."""
    server.pending.append(404)  # a claimed id with no job behind it
    job = server.add_job("knn", 1)
    run = rig(tmp_path, server)
    run.loop.run(burst=True)
    assert [call.job.job_id for call in run.loop.runner.runs] == [job]
    assert set(run.delivered()) == {job}


def test_an_account_without_rights_ends_the_loop(tmp_path: Path, server: FakeJobServer) -> None:
    """403 on claiming: the loop raises it, so the worker exits 78 instead of probing forever."""
    server.fail_next(PermissionDeniedError("POST /jobs/request/ answered 403", 403))
    with pytest.raises(PermissionDeniedError):
        rig(tmp_path, server).loop.run(burst=True)


def test_the_first_stop_finishes_the_running_job_and_claims_no_more(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """A stop during a job: that job's result is spooled; the next pending job stays pending."""
    first = server.add_job("knn", 1)
    second = server.add_job("knn", 1)
    run = rig(tmp_path, server)

    def stop_during_the_job(job: JobSpec) -> JobOutcome:
        run.shutdown.request()
        return FakeRunner().run(job, time_limit=60)

    run.loop.runner = FakeRunner(stop_during_the_job)
    run.loop.run()  # not a burst: only the stop ends it
    assert list(server.pending) == [second]
    assert run.delivered()[first]["success"] is True


class AbortedRunner:
    """A runner whose job sees two stop signals, then polls ``cancel`` as the real one does."""

    def __init__(self, shutdown: Shutdown) -> None:
        self.shutdown = shutdown
        self.cancel_seen: list[bool] = []

    def run(self, job: JobSpec, *, time_limit: float, **limits: Any) -> JobOutcome:
        """Two stops arrive mid-job; ``cancel()`` must then say abort."""
        cancel = limits["cancel"]
        self.cancel_seen.append(cancel())
        self.shutdown.request()
        self.cancel_seen.append(cancel())
        self.shutdown.request()
        self.cancel_seen.append(cancel())
        return failed("cancelled", "worker shut down")


def test_the_second_stop_aborts_the_running_job_and_its_failure_is_spooled(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """cancel() turns true at the second stop only; the cancelled job's failure is delivered."""
    job = server.add_job("knn", 1)
    run = rig(tmp_path, server)
    runner = run.loop.runner = AbortedRunner(run.shutdown)
    run.loop.run()
    assert runner.cancel_seen == [False, False, True]
    assert run.delivered()[job] == {"success": False, "message": "worker shut down"}
    assert [e.outcome for e in run.reporter.of(JobFinished)] == ["cancelled"]


class StopWhenIdleTwice(RecordingReporter):
    """Records events and sends a stop at the second "idle" status, as an operator might."""

    def __init__(self, shutdown: Shutdown) -> None:
        super().__init__()
        self.shutdown = shutdown

    def report(self, event: Event) -> None:
        """Keep it; the second idle status requests a stop."""
        super().report(event)
        if self.events.count(Status("idle")) == 2:
            self.shutdown.request()


def test_an_idle_loop_says_so_keeps_beating_and_stops_when_told(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """No job: status "idle" between claims, heartbeats while waiting, and a stop ends the wait."""
    run = rig(tmp_path, server)
    run.loop.reporter = reporter = StopWhenIdleTwice(run.shutdown)
    run.loop.run()
    assert server.calls == ["claim_job", "claim_job"]
    assert reporter.events.count(Status("idle")) == 2
    assert len(reporter.of(Heartbeat)) >= 2


class HoldingServer(FakeJobServer):
    """A server that holds the claim after the last job: it notes the status seen meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.rig: Rig | None = None
        self.status_while_held: list[str] = []

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """Hand out what is pending; then, as a held long poll would, no job (and a stop).

        A claim made ahead while a job draws is never held: it gets what is pending, or none.
        """
        if self.pending or self.rig is None or wait is None:
            return super().claim_job(wait, details=details)
        self.status_while_held.append(self.rig.reporter.of(Status)[-1].text)
        self.rig.shutdown.request()
        return Claim(None, wait)


def test_a_held_claim_after_a_job_shows_the_process_idle(tmp_path: Path) -> None:
    """While a long poll waits for the next job, the status says idle, not the last job."""
    server = HoldingServer()
    server.add_dataset(*toy_points())
    job = server.add_job("knn", 1)
    run = server.rig = rig(tmp_path, server, long_poll=30.0)
    run.loop.run()
    assert any(status.text.startswith(f"job {job} ") for status in run.reporter.of(Status))
    assert [text.split(";")[0] for text in server.status_while_held] == ["idle"]


class CountingServer(FakeJobServer):
    """Notes, at each claim, how many jobs the loop had finished (spooled and counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.rig: Rig | None = None
        self.finished_at_claims: list[int] = []

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """As the fake server; first noting how far the loop is."""
        assert self.rig is not None
        self.finished_at_claims.append(len(self.rig.reporter.of(JobFinished)))
        return super().claim_job(wait, details=details)


def test_the_next_job_is_claimed_while_the_last_one_draws(tmp_path: Path) -> None:
    """Each job's successor is claimed before that job is spooled; every job runs once."""
    server = CountingServer()
    server.add_dataset(*toy_points())
    jobs = [server.add_job("knn", 1) for _ in range(3)]
    run = server.rig = rig(tmp_path, server)
    run.loop.run(burst=True)
    assert [call.job.job_id for call in run.loop.runner.runs] == jobs
    # The first claim, one made ahead during each job (the last finds none), the last claim.
    assert server.finished_at_claims == [0, 0, 1, 2, 3]
    assert set(run.delivered()) == set(jobs)


def test_a_failed_claim_ahead_is_forgotten_and_the_loop_claims_as_usual(
    tmp_path: Path, server: FakeJobServer
) -> None:
    """A server away during the pictures costs nothing: the next job is claimed after."""
    jobs = [server.add_job("knn", 1) for _ in range(2)]
    run = rig(tmp_path, server)

    def away_during_the_pictures(job: JobSpec) -> JobOutcome:
        if job.job_id == jobs[0]:
            server.fail_next(TransientError("server away"), call="claim_job")
        return FakeRunner().run(job, time_limit=60)

    run.loop.runner = FakeRunner(away_during_the_pictures)
    run.loop.run(burst=True)
    assert [call.job.job_id for call in run.loop.runner.runs] == jobs
    assert not run.reporter.of(ServerError)  # the loop's own claims all succeeded
    assert all(update["success"] for update in run.delivered().values())


class StoppingServer(CountingServer):
    """Hands out the second job (claimed ahead) together with a stop signal."""

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """As the fake server; the second claim brings a stop."""
        claim = super().claim_job(wait, details=details)
        if self.calls.count("claim_job") == 2 and self.rig is not None:
            self.rig.shutdown.request()
        return claim


def test_a_job_claimed_ahead_runs_after_a_first_stop(tmp_path: Path) -> None:
    """A job leased to the worker ahead of time is run, not left to its lease; none follows."""
    server = StoppingServer()
    server.add_dataset(*toy_points())
    first, second, third = (server.add_job("knn", 1) for _ in range(3))
    run = server.rig = rig(tmp_path, server)
    run.loop.run()  # not a burst: only the stop ends it
    assert server.finished_at_claims == [0, 0]  # the second during the first job; none after
    assert [call.job.job_id for call in run.loop.runner.runs] == [first, second]
    assert list(server.pending) == [third]
    assert set(run.delivered()) == {first, second}
