"""worker.sdnotify against a real datagram socket playing systemd's side."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from worker.sdnotify import Notifier

RECEIVE_DEADLINE = 10.0  # seconds to wait for a datagram that must come


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET, as systemd binds it."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def receive(self) -> bytes:
        """The next datagram; fails the test if none arrives before the deadline."""
        return self.receive_with_pid()[0]

    def receive_with_pid(self) -> tuple[bytes, int]:
        """The next datagram and the sender's pid (what NotifyAccess=main checks)."""
        self.sock.settimeout(RECEIVE_DEADLINE)
        ucred_size = struct.calcsize("3i")
        data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(ucred_size))
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:ucred_size])[0]
        return data, pid

    def pending(self) -> list[bytes]:
        """Every datagram already queued (sendto on AF_UNIX queues before it returns)."""
        self.sock.setblocking(False)
        queued = []
        try:
            while True:
                queued.append(self.sock.recv(4096))
        except BlockingIOError:
            return queued


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    """A datagram socket bound at a filesystem path in tmp_path."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield FakeSystemd(sock, str(path))


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    """A datagram socket bound in the abstract namespace, as NOTIFY_SOCKET=@name names it."""
    name = f"mlworker-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield FakeSystemd(sock, "@" + name)


class Clock:
    """A monotonic clock the test moves by hand, for the watchdog's rate limit."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_status_stopping_are_sent_as_datagrams(systemd: FakeSystemd) -> None:
    """ready(), status() and stopping() each send their exact message, in order."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": systemd.notify_socket})
    notifier.ready()
    notifier.status("idle")
    notifier.stopping()
    notifier.close()
    assert [systemd.receive() for _ in range(3)] == [b"READY=1", b"STATUS=idle", b"STOPPING=1"]
    assert systemd.pending() == []


def test_fields_share_one_datagram_and_newlines_cannot_start_a_field(
    systemd: FakeSystemd,
) -> None:
    """ready(status) is one datagram; a newline in a value is sent as a space."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": systemd.notify_socket})
    notifier.ready("job 17 knn on moons\nWATCHDOG=trigger")
    notifier.notify(STATUS="2 results waiting", EXTEND_TIMEOUT_USEC=5_000_000)
    assert systemd.receive() == b"READY=1\nSTATUS=job 17 knn on moons WATCHDOG=trigger"
    assert systemd.receive() == b"STATUS=2 results waiting\nEXTEND_TIMEOUT_USEC=5000000"


def test_text_that_is_not_utf8_is_sent_replaced(systemd: FakeSystemd) -> None:
    """A status with an undecodable file name (a lone surrogate) is sent, not raised."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": systemd.notify_socket})
    notifier.status("reading data-\udcff.csv")
    assert systemd.receive() == b"STATUS=reading data-?.csv"


def test_abstract_namespace_socket(abstract_systemd: FakeSystemd) -> None:
    """NOTIFY_SOCKET=@name reaches a socket bound in the abstract namespace."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": abstract_systemd.notify_socket})
    notifier.ready()
    assert abstract_systemd.receive() == b"READY=1"


def test_watchdog_is_silent_without_watchdog_usec(systemd: FakeSystemd) -> None:
    """Without WATCHDOG_USEC, watchdog() sends nothing while other messages still go."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": systemd.notify_socket})
    notifier.watchdog()
    notifier.status("idle")
    assert notifier.watchdog_period is None
    assert systemd.receive() == b"STATUS=idle"
    assert systemd.pending() == []


def test_watchdog_pings_at_most_once_per_half_period(systemd: FakeSystemd) -> None:
    """With WatchdogSec=10, WATCHDOG=1 goes out first, then again only after 5 s."""
    clock = Clock()
    env = {"NOTIFY_SOCKET": systemd.notify_socket, "WATCHDOG_USEC": "10000000"}
    notifier = Notifier.from_environ(env, clock=clock)
    assert notifier.watchdog_period == 10.0
    notifier.watchdog()
    assert systemd.receive() == b"WATCHDOG=1"
    clock.now += 4.9
    notifier.watchdog()
    assert systemd.pending() == []
    clock.now += 0.1
    notifier.watchdog()
    notifier.watchdog()
    assert systemd.pending() == [b"WATCHDOG=1"]


@pytest.mark.parametrize(
    ("watchdog_pid", "enabled"),
    [("own", True), ("other", False), ("not-a-pid", False)],
)
def test_watchdog_pid_must_name_this_process(
    systemd: FakeSystemd, watchdog_pid: str, enabled: bool
) -> None:
    """WATCHDOG_PID naming another process (a forked child's parent) disables the watchdog."""
    pid_value = {"own": str(os.getpid()), "other": str(os.getpid() + 1)}.get(
        watchdog_pid, watchdog_pid
    )
    env = {
        "NOTIFY_SOCKET": systemd.notify_socket,
        "WATCHDOG_USEC": "60000000",
        "WATCHDOG_PID": pid_value,
    }
    notifier = Notifier.from_environ(env)
    notifier.watchdog()
    assert (notifier.watchdog_period is not None) is enabled
    assert systemd.pending() == ([b"WATCHDOG=1"] if enabled else [])


@pytest.mark.parametrize("usec", ["0", "", "sixty", "-5"])
def test_watchdog_usec_that_is_not_a_positive_integer_disables_it(
    systemd: FakeSystemd, usec: str
) -> None:
    """A WATCHDOG_USEC of 0 or not a number means no watchdog, as in sd_watchdog_enabled()."""
    env = {"NOTIFY_SOCKET": systemd.notify_socket, "WATCHDOG_USEC": usec}
    notifier = Notifier.from_environ(env)
    notifier.watchdog()
    assert notifier.watchdog_period is None
    assert systemd.pending() == []


def test_everything_is_a_noop_without_notify_socket(systemd: FakeSystemd) -> None:
    """Without NOTIFY_SOCKET no method sends anything, the watchdog included."""
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
    notifier.ready("up")
    notifier.status("idle")
    notifier.watchdog()
    notifier.notify(STATUS="x")
    notifier.stopping()
    assert not notifier.enabled
    assert notifier.watchdog_period is None
    assert systemd.pending() == []


def test_unsupported_notify_socket_is_logged_and_ignored() -> None:
    """A NOTIFY_SOCKET that is neither a path nor @name disables sending, with a warning."""
    with capture_logs() as logs:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "relative/path"})
        notifier.ready()
    assert not notifier.enabled
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert logs[0]["notify_socket"] == "relative/path"


def test_send_failure_never_raises_and_is_logged_once(tmp_path: Path) -> None:
    """Sending to a socket that is not there logs one warning; once it exists, sends resume."""
    path = tmp_path / "later"
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(path)})
    with capture_logs() as logs:
        notifier.ready()
        notifier.status("still nobody there")
    assert [entry["event"] for entry in logs] == ["sd_notify message not delivered"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier.status("systemd is back")
        assert FakeSystemd(sock, str(path)).pending() == [b"STATUS=systemd is back"]


def test_child_process_notifies_from_its_own_pid(systemd: FakeSystemd) -> None:
    """A real process started with systemd's variables sends READY=1 from its own pid (what
    NotifyAccess=main checks), and WATCHDOG_PID naming its parent keeps it from pinging."""
    code = (
        "import os, sys\n"
        "from worker.sdnotify import Notifier\n"
        "n = Notifier.from_environ()\n"
        "n.watchdog()\n"
        "n.ready('child up')\n"
        "sys.stdout.write(str(os.getpid()))\n"
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": systemd.notify_socket,
        "WATCHDOG_USEC": "60000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True
    )
    assert systemd.receive_with_pid() == (b"READY=1\nSTATUS=child up", int(child.stdout))
    assert systemd.pending() == []
