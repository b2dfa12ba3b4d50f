"""Long-poll claims: the worker's policy against scripted peers, the server's hub for real.

The policy tests run `worker.claims.Claimer` against `FaultServer` (a server that does not
hold claims, one that does, one that cuts the connection). The end-to-end tests run the
reference server and real `mlworker run` processes: a submit ends exactly one of several
waiting long polls, a server restart under a waiting worker loses no job, and SIGTERM acts
within seconds while a long poll is open.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import (
    WORKER_PASSWORD,
    WORKER_USER,
    admin_api,
    clear_jobs,
    start_worker,
    submit_jobs,
    wait_for,
    worker_server,
)
from fault_proxy import FaultProxy
from fault_server import DROP, FaultServer, Reply

from worker.api import API, Claim
from worker.backoff import Backoff
from worker.claims import Claimer
from worker.lifecycle import Shutdown
from worker.testing import FakeJobServer

HELD = {"X-Long-Poll": "0.4"}
STOP_DEADLINE = 15.0  # "within seconds" after SIGTERM, generously for a loaded machine


@pytest.fixture
def peer() -> Iterator[FaultServer]:
    """A scripted job server on a free loopback port."""
    with FaultServer() as running:
        yield running


def claimer(api: API, long_poll: float = 0.4) -> Claimer:
    """A claimer with a short long poll and a back-off of 5 to 10 s (easy to tell from 0)."""
    return Claimer(api, Shutdown(), lambda: None, long_poll=long_poll, idle=Backoff(5, 10))


def test_server_without_long_polls_gets_the_backoff(peer: FaultServer) -> None:
    """A server that answers at once without X-Long-Poll: wait was asked, back-off follows."""
    peer.answer("POST", "/jobs/request/", Reply(body={"job": None}))
    policy = claimer(API(host=peer.url, retry_for=0))
    assert policy.claim().job is None
    assert 5 <= policy.pause() <= 10
    [call] = peer.calls("POST", "/jobs/request/")
    assert 0.3 <= float(call.form["wait"]) <= 0.4


def test_held_empty_answer_means_ask_again_at_once(peer: FaultServer) -> None:
    """A server that held the claim for the wait it granted: the next claim follows at once."""
    peer.answer("POST", "/jobs/request/", Reply(body={"job": None}, headers=HELD, delay=0.4))
    policy = claimer(API(host=peer.url, retry_for=0))
    assert policy.claim().job is None
    assert policy.pause() == 0.0


def test_early_empty_answer_despite_the_header_gets_the_backoff(peer: FaultServer) -> None:
    """X-Long-Poll but an instant empty answer (a stopping server): no spinning, back-off."""
    peer.answer("POST", "/jobs/request/", Reply(body={"job": None}, headers={"X-Long-Poll": "30"}))
    policy = claimer(API(host=peer.url, retry_for=0), long_poll=30)
    assert policy.claim().job is None
    assert 5 <= policy.pause() <= 10


def test_long_poll_cut_by_a_dropped_connection_is_retried_at_once(peer: FaultServer) -> None:
    """The connection drops mid-poll (a proxy's idle timeout): one reconnect, the job arrives."""
    peer.fault("POST", "/jobs/request/", DROP)
    peer.answer("POST", "/jobs/request/", Reply(body={"job": 7}, headers=HELD))
    policy = claimer(API(host=peer.url, retry_for=10))
    assert policy.claim().job == 7
    first, second = peer.calls("POST", "/jobs/request/")
    assert second.at - first.at < 1.0  # the transport's first retry waits at most 0.5 s


def test_claim_reports_the_granted_wait(peer: FaultServer) -> None:
    """claim_job returns the job and X-Long-Poll's seconds; request_job stays the seed's call."""
    peer.answer("POST", "/jobs/request/", Reply(body={"job": 3}, headers={"X-Long-Poll": "12"}))
    api = API(host=peer.url, retry_for=0)
    assert api.claim_job(12) == Claim(3, 12.0)
    assert api.request_job() == 3
    assert peer.calls("POST", "/jobs/request/")[-1].form == {}


def test_claim_details_are_taken_only_for_the_claimed_job(peer: FaultServer) -> None:
    """Details sent with a claim are returned; details of another job are not trusted."""
    details = {"id": 3, "algorithm": "knn", "dataset": 1}
    peer.fault(
        "POST",
        "/jobs/request/",
        Reply(body={"job": 3, "details": details}),
        Reply(body={"job": 4, "details": details}),
    )
    api = API(host=peer.url, retry_for=0)
    assert api.claim_job(details=True) == Claim(3, None, details)
    assert api.claim_job(details=True) == Claim(4, None, None)
    assert peer.calls("POST", "/jobs/request/")[0].form == {"details": "true"}


@pytest.mark.slow
def test_real_worker_without_long_polls_backs_off(peer: FaultServer, tmp_path: Path) -> None:
    """A real `mlworker run` against a server that ignores `wait`: polls at its back-off."""
    peer.users = {WORKER_USER: WORKER_PASSWORD}
    peer.answer("POST", "/jobs/request/", Reply(body={"job": None}))
    with start_worker(tmp_path, peer.url, "--long-poll", "20", burst=False) as worker:
        wait_for(lambda: len(peer.calls("POST", "/jobs/request/")) >= 4, "four claims", 60)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.tail()
    arrivals = [call.at for call in peer.calls("POST", "/jobs/request/")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.2  # --poll-min 0.2: the back-off, not a spin
    assert all("wait" in call.form for call in peer.calls("POST", "/jobs/request/"))


@pytest.fixture(scope="module")
def module_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The module's reference server: demo data and the test worker account."""
    return worker_server(start_server)


@pytest.fixture
def server(module_server: RunningServer) -> RunningServer:
    """The module's server with no jobs left by an earlier test."""
    clear_jobs(module_server)
    return module_server


@pytest.mark.slow
def test_a_submit_ends_exactly_one_of_several_long_polls(server: RunningServer) -> None:
    """Four workers wait; one submit: one long poll gets the job, three wait their full time."""
    wait = 6.0
    answers: list[tuple[int | None, float]] = []
    lock = threading.Lock()

    def poll() -> None:
        api = admin_api(server.url)
        started = time.monotonic()
        job = api.request_job(wait=wait)
        with lock:
            answers.append((job, time.monotonic() - started))

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    [job] = submit_jobs(admin_api(server.url), [("test_ok", "iris", {})])
    for thread in threads:
        thread.join(30)
    assert sorted((a[0] for a in answers), key=str) == [job, None, None, None]
    assert all(took >= wait * 0.95 for got, took in answers if got is None)
    result = admin_api(server.url).get_job_result(job)
    assert (result["status"], result["attempt"]) == ("running", 1)


@pytest.mark.slow
def test_server_restart_under_a_waiting_worker_loses_no_job(
    server: RunningServer, tmp_path: Path
) -> None:
    """The server stops (ending the long poll) and returns; a job submitted then runs once."""
    with start_worker(tmp_path, server.url, "--long-poll", "30", burst=False) as worker:
        wait_for(lambda: worker.events("waiting for a job"), "the worker to wait", 60)
        server.stop()
        assert server.process is not None
        assert server.process.returncode == 0  # a graceful stop, the long poll notwithstanding
        server.start()
        [job] = submit_jobs(admin_api(server.url), [("test_ok", "iris", {})])
        wait_for(lambda: admin_api(server.url).get_job_result(job)["status"] == "done", "job", 90)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.tail()
    assert admin_api(server.url).get_job_result(job)["attempt"] == 1


@pytest.mark.slow
def test_sigterm_during_a_long_poll_stops_within_seconds(
    server: RunningServer, tmp_path: Path
) -> None:
    """SIGTERM while a 60 s long poll is open: exit 0 within seconds, no job taken."""
    with start_worker(tmp_path, server.url, "--long-poll", "60", burst=False) as worker:
        wait_for(lambda: worker.events("waiting for a job"), "the worker to wait", 60)
        signalled = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(STOP_DEADLINE) == 0, worker.tail()
        assert time.monotonic() - signalled < STOP_DEADLINE
    [job] = submit_jobs(admin_api(server.url), [("test_ok", "iris", {})])
    assert admin_api(server.url).get_job_result(job)["status"] == "pending"


@pytest.mark.slow
@pytest.mark.parametrize("seed_only", [False, True], ids=["additions", "seed-only"])
def test_the_additions_save_round_trips_and_a_v1_server_gets_the_v1_calls(
    server: RunningServer, tmp_path: Path, seed_only: bool
) -> None:
    """Details come with the claim, pictures with the result; a v1-only server is asked apart.

    Against a server of the v1 calls alone, the worker asks each job's details and the
    dataset listing, and after one unknown ``finish/`` sends pictures then the update.
    """
    admin = admin_api(server.url)
    jobs = submit_jobs(admin, [("test_ok", "iris", {}), ("test_ok", "iris", {})])
    with FaultProxy(server.url) as proxy:
        proxy.seed_only = seed_only
        with start_worker(tmp_path, proxy.url) as worker:
            assert worker.wait() == 0, worker.tail()
        details_asked = len(proxy.received("GET", r"/jobs/\d+/"))
        listings = len(proxy.received("GET", r"/datasets/"))
        uploads = len(proxy.received("POST", r"/jobs/\d+/pictures/"))
        finishes = [e.status for e in proxy.exchanges() if e.path.endswith("/finish/")]
        updates = len(proxy.received("POST", r"/jobs/\d+/update/"))
    results = [admin.get_job_result(job) for job in jobs]
    assert [result["status"] for result in results] == ["done", "done"]
    assert [len(result["pictures"]) for result in results] == [2, 2]
    if seed_only:
        assert (details_asked, listings, finishes, uploads, updates) == (2, 2, [404], 4, 2)
    else:
        assert (details_asked, listings, finishes, uploads, updates) == (0, 0, [200, 200], 0, 0)


class BlockedServer(FakeJobServer):
    """A server whose claims never answer (a long poll held until the test ends)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """Hang until released, as a held long poll does."""
        self.release.wait(60)
        return Claim(None, wait)


def test_a_stop_signal_leaves_a_held_claim_without_waiting_for_it() -> None:
    """A stop during a held claim: claim() returns no job while the request still hangs."""
    server = BlockedServer()
    shutdown = Shutdown()
    policy = Claimer(server, shutdown, lambda: None, long_poll=60, idle=Backoff(5, 10))
    shutdown.request()
    try:
        assert policy.claim() == Claim(None, None)
        assert not server.release.is_set()  # the request was left, not answered
    finally:
        server.release.set()
