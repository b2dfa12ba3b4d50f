"""Long polls on PostgreSQL: NOTIFY wakes a waiter in any server process; waiting is cheap.

The server runs with its fallback check set to an hour, so a job can reach a waiting
request only through ``LISTEN/NOTIFY`` (or a claim attempt of its own). While thirty-two long
polls are held, the server's threads and database sessions are counted: neither may grow
with the number of waiters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from conftest import RunningServer
from daemon_helpers import WORKER_PASSWORD, WORKER_USER, admin_api, clear_jobs, submit_jobs
from postgres_helpers import PostgresCluster, postgres_cluster

from worker.api import API

pytestmark = pytest.mark.slow

DATABASE = "mlworker_longpoll"
HELD = 32


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own, removed at the end."""
    with postgres_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer], cluster: PostgresCluster) -> RunningServer:
    """The demo server on PostgreSQL with the worker account; fallback checks once an hour."""
    env = {
        "DATABASE_URL": cluster.create_database(DATABASE),
        "MLWORKER_SERVER_LONG_POLL_CHECK": "3600",
    }
    running = start_server(demo=True, env=env)
    running.add_user(WORKER_USER, WORKER_PASSWORD, admin=True)
    clear_jobs(running)
    return running


def established(port: int) -> int:
    """TCP connections accepted on ``port`` of 127.0.0.1 that are open now."""
    local = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == local and line.split()[3] == "01")


def server_threads(server: RunningServer) -> int:
    """Threads of every process of the server (arbiter and workers)."""
    assert server.process is not None
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids += [int(pid) for pid in children.read_text().split()]
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        total += int(next(line for line in status if line.startswith("Threads:")).split()[1])
    return total


Answers = list[tuple[int | None, float]]


def hold_polls(
    server: RunningServer, count: int, wait: float
) -> tuple[list[threading.Thread], Answers]:
    """``count`` long polls, each on a connection of its own; returns once all are open."""
    answers: Answers = []
    apis = [admin_api(server.url) for _ in range(count)]
    for api in apis:
        api.close()  # its login's kept-alive connection: each poll opens its own
    wait_until(lambda: established(server.port) <= 1, "the logins' connections to close")

    def poll(api: API) -> None:
        started = time.monotonic()
        answers.append((api.request_job(wait=wait), time.monotonic() - started))

    threads = [threading.Thread(target=poll, args=(api,), daemon=True) for api in apis]
    for thread in threads:
        thread.start()
    wait_until(lambda: established(server.port) >= count, "the long polls to connect")
    return threads, answers


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` every 50 ms for up to 30 s."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_notify_ends_one_long_poll_from_any_process(server: RunningServer) -> None:
    """With fallback checks off, a submit still ends exactly one of four waits, early."""
    wait = 8.0
    threads, answers = hold_polls(server, 4, wait)
    [job] = submit_jobs(admin_api(server.url), [("test_ok", "iris", {})])
    for thread in threads:
        thread.join(wait * 2)
    [took] = [took for claimed, took in answers if claimed == job]
    assert took < wait * 0.9, answers  # woken by NOTIFY, not at the end of its wait
    assert sum(1 for claimed, _ in answers if claimed is None) == 3


def test_held_long_polls_take_no_thread_or_session_each(
    server: RunningServer, cluster: PostgresCluster
) -> None:
    """Thirty-two held long polls: server threads and database sessions stay far below that.

    An implementation holding a thread or a session per waiter shows thirty-two more for as
    long as they wait (a minute), so the wait for the threads to drop would time out.
    """
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    idle_threads = server_threads(server)
    login = admin_api(server.url)
    cookies = {cookie.name: cookie.value for cookie in login._transport.session.cookies}
    held: list[int] = []

    def poll(number: int) -> None:
        answer = requests.post(
            server.url + "jobs/request/",
            data={"wait": "60"},
            headers={"X-CSRFToken": cookies["csrftoken"] or "", "X-Worker": f"held-{number}"},
            cookies=cookies,
            timeout=90,
        )
        held.append(answer.status_code)

    for number in range(HELD):
        threading.Thread(target=poll, args=(number,), daemon=True).start()
    wait_until(lambda: established(server.port) >= HELD, "the long polls to connect")
    wait_until(
        lambda: server_threads(server) - idle_threads < HELD // 4,
        "the server's threads to drop back while the polls are held",
    )
    assert cluster.query(DATABASE, sessions, DATABASE)[0][0] < HELD // 4
    assert held == []  # all still held; the server's stop at the end answers them
