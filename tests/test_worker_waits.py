"""Every wait of a real `mlworker run` is bounded and a stop signal cuts it within seconds.

A hostile `tests/fault_server.py` trickles its answer a byte at a time, asks
for a `Retry-After` of three years, or is not there at all while the worker
retries its login; the worker must act on SIGTERM at once whatever it waits
on, and never plan a wait longer than the documented ceiling.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from conftest import free_port
from daemon_helpers import DEADLINE, WORKER_PASSWORD, WORKER_USER, start_worker
from fault_server import FaultServer, Reply
from server_helpers import wait_for

from worker.backoff import RETRY_AFTER_MAX

pytestmark = pytest.mark.slow

STOP_DEADLINE = 20.0  # seconds a stopped worker may take (a loaded machine); the waits last minutes


def hostile_server() -> FaultServer:
    """A server that knows the test worker account."""
    return FaultServer(users={WORKER_USER: WORKER_PASSWORD})


def test_sigterm_cuts_a_claim_the_server_trickles(tmp_path: Path) -> None:
    """An answer sent one byte every 2 s (minutes in all): SIGTERM ends the worker, exit 0."""
    with hostile_server() as server:
        server.answer("POST", "/jobs/request/", Reply(body={"job": None}, trickle=2.0))
        with start_worker(tmp_path, server.url, burst=False) as worker:
            wait_for(
                lambda: server.calls("POST", "/jobs/request/"), "the first claim", deadline=DEADLINE
            )
            worker.signal(signal.SIGTERM)
            assert worker.wait(STOP_DEADLINE) == 0, worker.tail()
            assert worker.events("stop signal received")


def test_sigterm_cuts_login_retries(tmp_path: Path) -> None:
    """No server at all and a minute of login retries: SIGTERM ends the worker, exit 0."""
    host = f"http://127.0.0.1:{free_port()}/"
    with start_worker(tmp_path, host, "--poll-max", "60", burst=False) as worker:
        wait_for(lambda: worker.events("call failed, retrying"), "a login retry", deadline=DEADLINE)
        worker.signal(signal.SIGTERM)
        assert worker.wait(STOP_DEADLINE) == 0, worker.tail()


def test_retry_after_of_years_is_capped_and_sigterm_ends_the_wait(tmp_path: Path) -> None:
    """``503`` with ``Retry-After: 99999999``: the planned wait is at most the ceiling."""
    with hostile_server() as server:
        busy = Reply(503, {"error": "busy"}, headers={"Retry-After": "99999999"})
        server.answer("POST", "/jobs/request/", busy)
        with start_worker(tmp_path, server.url, burst=False) as worker:
            (away, *_) = wait_for(
                lambda: worker.events("server unreachable; probing again"),
                "the wait",
                deadline=DEADLINE,
            )
            assert 0 < away["wait"] <= RETRY_AFTER_MAX
            worker.signal(signal.SIGTERM)
            assert worker.wait(STOP_DEADLINE) == 0, worker.tail()
