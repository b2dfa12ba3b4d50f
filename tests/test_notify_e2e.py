"""sd_notify from `mlworker run --processes N`, with the test playing systemd's side.

systemd binds an AF_UNIX datagram socket, names it in ``NOTIFY_SOCKET`` and, with
``NotifyAccess=main``, takes messages from the unit's main process only: so the test
reads each sender's pid (``SO_PASSCRED``) as well as the message.
"""

from __future__ import annotations

import signal
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from daemon_helpers import admin_api, start_worker, submit_jobs, wait_for, worker_server
from fleet_helpers import Gates, open_gates_and_end, start_fleet, wait_final

pytestmark = pytest.mark.slow

STARTUP = 120.0
WATCHDOG_USEC = "1000000"  # a one-second watchdog: pings every half second
_UCRED = struct.calcsize("3i")  # pid, uid, gid


class Systemd:
    """The receiving end of NOTIFY_SOCKET: every message with the pid that sent it."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self.received: list[tuple[dict[str, str], int]] = []
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.setblocking(False)

    def messages(self) -> list[tuple[dict[str, str], int]]:
        """Everything received so far: (fields, sender pid) in order of arrival."""
        while True:
            try:
                data, ancdata, _flags, _address = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED))
            except BlockingIOError:
                return self.received
            pid = next(
                struct.unpack("3i", payload[:_UCRED])[0]
                for level, kind, payload in ancdata
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            lines = data.decode().split("\n")
            self.received.append((dict(line.split("=", 1) for line in lines), pid))

    def values(self, key: str) -> list[str]:
        """The values of field ``key`` received so far, in order."""
        return [fields[key] for fields, _pid in self.messages() if key in fields]


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    """A datagram socket bound at a path in tmp_path, as systemd binds NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield Systemd(sock, path)


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account and no pending jobs."""
    return worker_server(start_server)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    """Gates for ``test_gate`` jobs; at the end all open, and no process outlives the test."""
    yield from open_gates_and_end(tmp_path)


def test_supervisor_tells_systemd_what_the_fleet_does(
    server: RunningServer, gates: Gates, systemd: Systemd, tmp_path: Path
) -> None:
    """READY=1, STATUS= per process, WATCHDOG=1, STOPPING=1: all from the supervisor alone."""
    admin = admin_api(server.url)
    job = submit_jobs(admin, [("test_gate", "moons", {"gate": "notify"})])[0]
    notify = {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": WATCHDOG_USEC}
    with start_fleet(tmp_path, server.url, gates, 2, **notify) as fleet:
        wait_for(lambda: gates.started("notify"), "the job to run", STARTUP)
        running = f"job {job} test_gate on moons"
        wait_for(
            lambda: any(running in s and "idle" in s for s in systemd.values("STATUS")),
            "a status with one process on the job and one idle",
        )
        wait_for(lambda: systemd.values("WATCHDOG"), "a watchdog ping")
        fleet.signal(signal.SIGTERM)
        wait_for(lambda: systemd.values("STOPPING"), "STOPPING=1")
        gates.open("notify")
        assert fleet.wait() == 0

    assert wait_final(admin, job)["status"] == "done"
    messages = systemd.messages()
    assert {pid for _fields, pid in messages} == {fleet.pid}
    ready = next(i for i, (fields, _pid) in enumerate(messages) if fields.get("READY") == "1")
    first_job = next(i for i, (f, _pid) in enumerate(messages) if running in f.get("STATUS", ""))
    assert ready < first_job
    assert "1" in systemd.values("STOPPING")
    assert [fit["notify_socket"] for fit in gates.started("notify")] == [None]


def test_no_ready_when_the_login_is_refused(
    server: RunningServer, systemd: Systemd, tmp_path: Path
) -> None:
    """READY=1 waits for the login: a refused one exits 78 without ever saying ready."""
    env = {"MLWORKER_PASSWORD": "not-the-password", "NOTIFY_SOCKET": str(systemd.path)}
    with start_worker(tmp_path, server.url, "--processes", "2", env=env) as supervisor:
        assert supervisor.wait() == 78
    assert "1" not in systemd.values("READY")
